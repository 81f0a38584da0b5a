"""The read model: what ``status``, ``log``, ``report`` and the dashboard show, computed once.

Every reader opens the ledger read-only (``open_read``), so looking never
changes what is looked at, and a figure means the same wherever it is shown:

- ``chosen_tag``: the tag a view shows when ``--tag`` is left out (the most recent);
- ``rows`` / ``row``: one JSON-able dict per experiment, the objects of
  ``ratchet log --json`` (oldest first; ``metric`` is None where none was measured);
- ``overview``: the figures of ``ratchet status`` for a list of experiments
  (one tag's, or all): counts, baseline, incumbent (``models.incumbent``, the one
  "best"), its change, where the budget went, what rejecting and pruning saved,
  and what the proposer spent;
- ``overviews``: one ``Overview`` per tag, for the dashboard;
- ``budget_lines`` / ``usage_line``: ``ratchet status``'s budget and proposer lines,
  shared with the dashboard so both print the same words;
- ``lesson_of``: the journal's one-line lesson of an experiment within its history;
- ``lineage``: the experiments in tree order with their depth, for ``log --tree``;
- ``by_proposer``: experiments, keeps, seconds and dollars per proposer (ensembles).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from ..errors import ConfigError
from ..models import FAILED, JUDGED, Experiment, incumbent
from .journal import _parents, confirmed, lesson
from .ledger import Ledger

__all__ = [
    "LEDGER_FILE",
    "Overview",
    "open_read",
    "experiments",
    "chosen_tag",
    "row",
    "rows",
    "overview",
    "overviews",
    "change_pct",
    "budget_lines",
    "usage_line",
    "lesson_of",
    "lineage",
    "by_proposer",
]

LEDGER_FILE = Path(".ratchet") / "ledger.sqlite"


def open_read(study_root: Path) -> Ledger:
    """The study's ledger, read-only; a clear sentence when there is none yet."""
    path = Path(study_root) / LEDGER_FILE
    if not path.exists():
        raise ConfigError(f"{study_root} has no ledger yet — run `ratchet run {study_root}` first")
    return Ledger(path, read_only=True)


def experiments(study_root: Path, tag: str | None = None) -> list[Experiment]:
    """Every experiment (of ``tag``, or of all tags), oldest first, from a read-only open."""
    ledger = open_read(study_root)
    try:
        return ledger.experiments(tag)
    finally:
        ledger.close()


def chosen_tag(exps: list[Experiment], asked: str | None, where: Path) -> str | None:
    """The tag a view shows: ``asked``, else the most recent (the newest experiment's); None
    when nothing is recorded. A tag with no experiment is a ``ConfigError`` naming the known
    ones, never an empty view that reads as "nothing happened"."""
    known = list(dict.fromkeys(e.tag for e in exps))
    if asked is None:
        return exps[-1].tag if exps else None
    if asked not in known:
        names = ", ".join(known) or "none yet"
        raise ConfigError(
            f"no tag {asked!r} in {where} — known tags: {names} (pass one with --tag)"
        )
    return asked


def row(e: Experiment) -> dict[str, Any]:
    """One ``ratchet log --json`` object."""
    return {
        "id": e.id,
        "tag": e.tag,
        "status": e.status,
        "metric": e.metric,
        "samples": e.samples,
        "commit": e.commit,
        "parent": e.parent,
        "description": e.description,
        "reason": e.reason,
        "confirmed": confirmed(e),
        "duration_s": round(e.duration_s, 3),
        "created_at": e.created_at,
        "extras": e.extras,
        "meta": e.meta,
        "input_tokens": e.usage.input_tokens,
        "output_tokens": e.usage.output_tokens,
        "cost_usd": round(e.usage.cost_usd, 6),
        "budget_s": e.budget_s,
        "worker": e.worker,
        "host": e.host,
        "proposer": e.proposer,
        "parent_id": e.parent_id,
        "island": e.island,
        "node_kind": e.node_kind,
        "void": e.void,  # why a keep was invalidated (`ratchet invalidate`), else null
    }


def rows(exps: list[Experiment]) -> list[dict[str, Any]]:
    return [row(e) for e in exps]


def change_pct(base: float | None, best: float | None) -> float | None:
    """The incumbent against the baseline in percent of the metric (signed, as measured)."""
    if base is None or best is None or base == 0:
        return None
    return (best - base) / abs(base) * 100


@dataclass(frozen=True)
class Overview:
    """The figures of one set of experiments (a tag, or the whole study)."""

    counts: dict[str, int]
    baseline: Experiment | None
    incumbent: Experiment | None
    running: list[Experiment]
    failed_s: float  # spent on candidates that crashed, timed out or were pruned
    rejected_early: int  # proposals refused before running (not proposer failures)
    saved_rejecting_s: float | None  # estimates from median durations; None: nothing judged
    pruned: int
    saved_pruning_s: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def change(self) -> float | None:
        """The incumbent's metric against the baseline's, in percent (signed as measured)."""
        base = self.baseline.metric if self.baseline else None
        return change_pct(base, self.incumbent.metric if self.incumbent else None)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def after_baseline(self) -> int:
        """Experiments that count towards the keep rate: all but the baseline and running ones."""
        return self.total - self.counts.get("baseline", 0) - self.counts.get("running", 0)

    @property
    def keep_rate(self) -> float | None:
        """Keeps per experiment after the baseline (as report.md has it), or None before any."""
        after = self.after_baseline
        return self.counts.get("keep", 0) / after if after else None

    def improvement(self, goal: str) -> float | None:
        """``change`` in the goal's direction: positive is better (as report.md's "% better")."""
        pct = self.change
        return None if pct is None else (-pct if goal == "minimize" else pct)


def overview(exps: list[Experiment]) -> Overview:
    """What ``ratchet status`` shows about ``exps``.

    Saved by rejecting: proposals refused before they ran (verify, dedupe; not
    proposer failures) × the median duration of a judged candidate (its
    samples included). Saved by pruning: per pruned experiment, the median
    duration of one sample × (its samples + 1) minus what it ran. Both are
    estimates of what a full run would have cost.
    """
    early = [e for e in exps if e.status == "rejected" and e.duration_s == 0]
    early = [e for e in early if not e.reason.startswith("proposal:")]
    pruned = [e for e in exps if e.status == "pruned"]
    judged = [e for e in exps if e.status in JUDGED]
    measured = judged or [e for e in exps if e.status in ("baseline", "remeasure")]
    saved_rejecting = saved_pruning = None
    if measured:
        run = median(e.duration_s for e in measured)
        per_sample = median(e.duration_s / max(1, len(e.samples)) for e in measured)
        saved_rejecting = len(early) * run
        saved_pruning = sum(
            max(0.0, per_sample * (len(e.samples) + 1) - e.duration_s) for e in pruned
        )
    return Overview(
        counts=dict(Counter(e.status for e in exps)),
        baseline=next((e for e in exps if e.status == "baseline"), None),
        incumbent=incumbent(exps),
        running=[e for e in exps if e.status == "running"],
        failed_s=sum(e.duration_s for e in exps if e.status in FAILED),
        rejected_early=len(early),
        saved_rejecting_s=saved_rejecting,
        pruned=len(pruned),
        saved_pruning_s=saved_pruning,
        input_tokens=sum(e.usage.input_tokens for e in exps),
        output_tokens=sum(e.usage.output_tokens for e in exps),
        cost_usd=sum(e.usage.cost_usd for e in exps),
    )


def overviews(exps: list[Experiment]) -> dict[str, Overview]:
    """One ``Overview`` per tag, tags in the order they first appeared."""
    tags: dict[str, list[Experiment]] = {}
    for e in exps:
        tags.setdefault(e.tag, []).append(e)
    return {tag: overview(items) for tag, items in tags.items()}


def budget_lines(figures: Overview) -> list[str]:
    """Where the budget went, and what rejecting and pruning saved (see ``overview``)."""
    spent = figures.failed_s
    lines = [f"budget    {spent:.1f} s spent on candidates that crashed, timed out or were pruned"]
    if figures.saved_rejecting_s is None or figures.saved_pruning_s is None:
        return lines
    early, pruned = figures.rejected_early, figures.pruned
    proposals = f"{early} proposal{'' if early == 1 else 's'}"
    runs = f"{pruned} run{'' if pruned == 1 else 's'}"
    lines.append(
        f"saved     ~{figures.saved_rejecting_s:.1f} s by rejecting {proposals} before running,"
        f" ~{figures.saved_pruning_s:.1f} s by stopping {runs} early (estimates from median"
        " durations)"
    )
    return lines


def usage_line(figures: Overview, *, max_tokens: int | None, max_cost_usd: float | None) -> str:
    """Tokens and cost the proposer spent, with the caps when set; "" when nothing was spent."""
    tokens_in, tokens_out = figures.input_tokens, figures.output_tokens
    if not tokens_in and not tokens_out:
        return ""
    cost = figures.cost_usd
    token_cap = f" of max {max_tokens:,}" if max_tokens else ""
    cost_cap = f" of max ${max_cost_usd:g}" if max_cost_usd else ""
    money = f", ${cost:.4f}{cost_cap}" if cost or cost_cap else " (no price set for the model)"
    return (
        f"{tokens_in + tokens_out:,} tokens ({tokens_in:,} in, {tokens_out:,} out){token_cap}"
        + money
    )


def lesson_of(e: Experiment, exps: list[Experiment], *, metric_name: str, goal: str) -> str:
    """The journal's lesson of ``e``, judged against the metric of the commit it built on."""
    parent_metric = _parents(exps).get(e.parent or "")
    return lesson(e, parent_metric, metric_name=metric_name, goal=goal)
def lineage(exps: list[Experiment]) -> list[tuple[int, Experiment]]:
    """(depth, experiment) in depth-first order, children under the experiment they were
    built on (``parent_id``, else found by the parent commit; roots: baselines and rows
    whose parent is not in the list), oldest child first."""
    from ..policies.base import parent_id  # the policies' one reading of a row's parent

    known = {e.id for e in exps}
    children: dict[int | None, list[Experiment]] = {}
    for e in exps:
        up = parent_id(e, exps) if e.status != "baseline" else None
        children.setdefault(up if up in known and up != e.id else None, []).append(e)
    out: list[tuple[int, Experiment]] = []
    stack = [(0, e) for e in reversed(children.get(None, []))]
    while stack:
        depth, e = stack.pop()
        out.append((depth, e))
        stack.extend((depth + 1, c) for c in reversed(children.get(e.id, [])))
    return out


def by_proposer(exps: list[Experiment]) -> dict[str, tuple[int, int, float, float]]:
    """Per proposer that proposed something: (experiments, keeps, seconds, dollars)."""
    table: dict[str, list[float]] = {}
    for e in exps:
        if not e.proposer:
            continue  # a measurement (baseline, re-measure): nobody proposed it
        row = table.setdefault(e.proposer, [0, 0, 0.0, 0.0])
        row[0] += 1
        row[1] += e.status == "keep"
        row[2] += e.duration_s
        row[3] += e.usage.cost_usd
    return {k: (int(r[0]), int(r[1]), r[2], r[3]) for k, r in sorted(table.items())}
