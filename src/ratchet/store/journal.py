"""The study's memory of what each experiment taught: the journal.

It reads the whole study's history (``Ledger.experiments()`` without a tag),
so memory spans tags and survives restarts: the ledger is the only store.
What was already tried is ``decide.dedupe``.

Journal. Each experiment becomes a hypothesis (description and rationale),
an outcome (status, metric, change against its parent) and a one-line lesson
such as ``LR 0.03 → 0.045 made val_bpb worse by 0.02 (discard)``.
``render_journal`` is the compact, bounded form handed to proposers in
``Context.journal``; ``write_journal`` writes the full Markdown notebook for
people to ``.ratchet/journal.md``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ..decide.sampling import CONFIRM_METRIC, CONFIRMED
from ..models import JUDGED, KEPT, UNTOLD, Experiment, Note, gain, shown_status
from ..safetext import printable
from .atomic import write_atomically

__all__ = [
    "CONFIRMED",
    "CONFIRM_METRIC",
    "confirmed",
    "lesson",
    "render_journal",
    "journal_markdown",
    "write_journal",
]


def confirmed(exp: Experiment) -> bool | None:
    """Whether [confirm] confirmed this experiment; None when it was not checked."""
    flag = exp.extras.get(CONFIRMED)
    return None if flag is None else bool(flag)


# --- journal ---------------------------------------------------------------------------


def _one_line(text: str, limit: int = 160) -> str:
    flat = printable(text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return _one_line(line, 200)
    return ""


def _parents(history: Sequence[Experiment]) -> dict[str, float]:
    """The measured metric of every commit an experiment can build on."""
    return {
        e.commit: e.metric
        for e in history
        if e.commit and e.metric is not None and e.status in KEPT
    }


def _when(stamp: float) -> str:
    """A note's time, in UTC to the minute."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))


def _number(value: float) -> str:
    return f"{value:.6g}"


def _change(metric: float, parent: float | None, name: str, goal: str) -> str:
    if parent is None:
        return f"gave {name} {_number(metric)}"
    delta = metric - parent
    if delta == 0:
        return f"left {name} unchanged at {_number(metric)}"
    improved = gain(metric, parent, goal) > 0
    return f"made {name} {'better' if improved else 'worse'} by {abs(delta):.3g}"


def lesson(exp: Experiment, parent_metric: float | None, *, metric_name: str, goal: str) -> str:
    """One line: what was tried and what happened, e.g. ``x made loss worse by 0.02 (discard)``."""
    what = _one_line(exp.description or "(no description)", 120)
    why = _first_line(exp.reason)
    if exp.void is not None:
        kept = f"{what} was kept" if exp.status == "keep" else f"{exp.status} {what}"
        return f"{kept}, then voided by a human: {_one_line(exp.void)}"
    status = exp.status
    if status == "baseline":
        return f"baseline: {metric_name} {_number(exp.metric or 0.0)}"
    if status == "remeasure":
        measured = "no metric" if exp.metric is None else f"{metric_name} {_number(exp.metric)}"
        return f"{what}: {measured}" + (f" ({why})" if why else "")
    if status in JUDGED and exp.metric is not None:
        text = f"{what} {_change(exp.metric, parent_metric, metric_name, goal)} ({status})"
        if status == "unconfirmed" or confirmed(exp) is False:
            text += " but did not confirm"
        return text
    verb = {
        "crash": "crashed",
        "timeout": "timed out",
        "pruned": "was stopped early",
        "rejected": "was rejected",
        "interrupted": "was interrupted",
    }.get(status, status)
    return f"{what} {verb}" + (f": {why}" if why else "")


def render_journal(
    history: Sequence[Experiment],
    *,
    metric_name: str = "metric",
    goal: str = "minimize",
    limit_chars: int = 4000,
    recent: int = 10,
) -> str:
    """The lessons for a prompt, most relevant first, at most ``limit_chars`` long.

    Order: what was kept (and the baseline), newest first; then the ``recent``
    latest other experiments, newest first; then older failures. Proposer
    failures and re-measurements are left out (the prompt shows the last
    failure on its own); lines that do not fit are counted, not cut. Lessons
    are only worded for the lines that fit, so a long history stays cheap.
    """
    parents = _parents(history)
    rows = [
        e
        for e in reversed(history)
        if e.status not in UNTOLD and not e.reason.startswith("proposal:")
    ]
    kept = [e for e in rows if e.status in KEPT and e.void is None]
    others = [e for e in rows if e.status not in KEPT or e.void is not None]
    sections = [
        ("Kept, newest first:", kept),
        ("Recent, newest first:", others[:recent]),
        ("Older failures:", others[recent:]),
    ]
    budget = limit_chars - 60  # room for the "more" line
    out: list[str] = []
    left = 0
    for title, items in sections:
        header = False
        for exp in items:
            if budget < 40:
                left += 1
                continue
            text = lesson(exp, parents.get(exp.parent or ""), metric_name=metric_name, goal=goal)
            line = f"- #{exp.id} {text}"
            cost = len(line) + 1 + (0 if header else len(title) + 1)
            if cost > budget:
                left += 1
                continue
            if not header:
                out.append(title)
                header = True
            out.append(line)
            budget -= cost
    if left:
        out.append(f"({left} more in .ratchet/journal.md)")
    return "\n".join(out)


def journal_markdown(
    history: Sequence[Experiment],
    *,
    metric_name: str,
    goal: str,
    title: str = "",
    notes: Sequence[Note] = (),
) -> str:
    """The full journal for people: the human's notes, then every finished experiment."""
    parents = _parents(history)
    head = f"# Journal{f' — {title}' if title else ''}\n\n"
    if notes:
        head += "## Notes from the human\n\n"
        head += "".join(
            f"- {_when(n.created_at)} (tag {n.tag}): {_one_line(n.text, 1000)}\n" for n in notes
        )
        head += "\n"
    head += f"Metric: {metric_name} ({goal}). One entry per experiment, oldest first.\n"
    entries = [
        _entry(e, parents.get(e.parent or ""), metric_name, goal)
        for e in history
        if e.status != "running"
    ]
    return head + "".join(entries)


# A finished experiment never changes, so its entry is worded once per process and
# reused: writing the journal after every experiment stays cheap in a long run.
_ENTRIES: dict[tuple[object, ...], str] = {}
_ENTRIES_MAX = 50_000


def _entry(exp: Experiment, parent: float | None, metric_name: str, goal: str) -> str:
    key = (exp.id, exp.created_at, exp.status, exp.void, parent, metric_name, goal)
    text = _ENTRIES.get(key)
    if text is None:
        hypothesis = _one_line(exp.description, 400)
        if exp.rationale:
            hypothesis += f" — {_one_line(exp.rationale, 1000)}"
        lines = [
            "",
            f"## #{exp.id} {shown_status(exp)} — {_one_line(exp.description, 100)}",
            "",
            f"- hypothesis: {hypothesis}",
            f"- outcome: {_outcome(exp, parent, metric_name)}",
            f"- lesson: {lesson(exp, parent, metric_name=metric_name, goal=goal)}",
            f"- tag {exp.tag}, {exp.duration_s:.1f} s, commit {(exp.commit or '—')[:7]}",
        ]
        text = "\n".join(lines) + "\n"
        if len(_ENTRIES) >= _ENTRIES_MAX:
            _ENTRIES.clear()
        _ENTRIES[key] = text
    return text


def _outcome(exp: Experiment, parent: float | None, metric_name: str) -> str:
    parts = [exp.status]
    if exp.metric is not None:
        measured = f"{metric_name} {_number(exp.metric)}"
        if len(exp.samples) > 1:
            measured += f" (mean of {len(exp.samples)} samples)"
        parts.append(measured)
        if parent is not None and exp.status != "baseline":
            parts.append(f"parent {_number(parent)}, {exp.metric - parent:+.3g}")
    why = _first_line(exp.reason)
    if why:
        parts.append(why)
    if exp.void is not None:
        parts.append(f"void: {_one_line(exp.void)}")
    return ", ".join(parts)


def write_journal(
    path: Path,
    history: Sequence[Experiment],
    *,
    metric_name: str,
    goal: str,
    title: str = "",
    notes: Sequence[Note] = (),
) -> None:
    """Write ``journal.md`` whole: readers never see half of it."""
    text = journal_markdown(history, metric_name=metric_name, goal=goal, title=title, notes=notes)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)
