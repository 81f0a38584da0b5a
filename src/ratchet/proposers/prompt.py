"""The prompt an LLM proposer sends: what it must know to propose the next experiment.

Sections, in order: the research program (program.md); the objective and the
incumbent; the editable files at the parent commit, with line numbers; the
table of recent experiments (id, status, metric, delta vs the incumbent,
description and, for failures, the reason); the journal when there is one;
the tail of the last failure's log; then the request. The edit-format
instructions are the system message.

The prompt stays within ``[proposer] prompt_tokens``. Tokens are estimated
as one per three characters, deliberately pessimistic (English prose runs
about four characters a token, code about three), so the real prompt is
smaller than the budget, never larger. The program, the files and the
instructions are never cut: when they alone do not fit, ``PromptTooLarge``
ends the run with a message that says what to change. The optional parts
give way instead: the failure tail is bounded, the journal may take at most
half of what is left, and the history is trimmed oldest first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ProposalsExhausted
from ..models import ROUTINE, UNTOLD, Context, Experiment, shown_status
from ..safetext import printable

__all__ = [
    "Prompt",
    "PromptTooLarge",
    "build_prompt",
    "estimate_tokens",
    "numbered",
    "repair_message",
    "system_message",
]

CHARS_PER_TOKEN = 3
HISTORY_ROWS = 60  # the table's longest length, whatever the budget
FAILURE_CHARS = 2000  # the last failure's log tail, at most
FAILURE_LINES = 40
_REASON_CHARS = 300  # of a failed experiment's reason, in its table row
# Rows that are not experiments a proposer ran: still running, or the incumbent measured again.

_FORMAT = """\
Answer in exactly this format:

1. First line: a one-line description of the change (under 100 characters).
2. Optionally, a few lines on why you expect it to help.
3. Then one or more edit blocks, each exactly like this:

path/to/file.py
<<<<<<< SEARCH
lines copied exactly from the current file, without the line numbers
=======
the new lines that replace them
>>>>>>> REPLACE

Rules for edit blocks:
- The path is the file's path as listed under "Editable files", alone on its line.
- The SEARCH part must match the current file exactly, indentation included, and
  match only one place: include a few unchanged lines around the change if needed.
- Use several blocks for several places or several files; blocks apply in order.
- To create a new editable file, leave the SEARCH part empty.
- Edit only the editable files. Every other file, ratchet.toml and the program are
  fixed; an edit to them is rejected.
A unified diff, or a whole file given as its path followed by a fenced code block,
is accepted too, but SEARCH/REPLACE blocks are preferred."""


class PromptTooLarge(ProposalsExhausted):
    """The parts that are never cut (program, files, instructions) exceed the budget."""


@dataclass(frozen=True)
class Prompt:
    """The system and user messages, their estimated size, and what was left out."""

    system: str
    user: str
    tokens: int
    rows_shown: int
    rows_omitted: int
    journal_cut: bool = False


def estimate_tokens(text: str) -> int:
    """A pessimistic token count: one token per ``CHARS_PER_TOKEN`` characters."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def system_message(context: Context) -> str:
    """Who the model is in the loop, and the exact edit format."""
    better = "lower" if context.goal == "minimize" else "higher"
    return (
        "You are the proposer in an autonomous research loop. Each answer you give is one"
        " experiment: a small change to the editable files that you expect to improve the"
        f" metric `{context.metric_name}` ({better} is better). The harness runs it under a"
        " fixed time budget, measures the metric with fixed code, and keeps the change"
        " only if it is really better; otherwise it is reverted. One idea per experiment.\n\n"
        + _FORMAT
    )


def repair_message(reason: str) -> str:
    """The follow-up sent once when an answer cannot be applied."""
    return (
        f"Your answer could not be applied: {reason}\n\n"
        "Send the whole answer again, corrected: the one-line description first, then the"
        " edit blocks. Copy SEARCH lines exactly from the files as given above, without"
        " the line numbers."
    )


def build_prompt(context: Context, budget: int) -> Prompt:
    """The prompt for ``context`` within ``budget`` tokens, or ``PromptTooLarge``."""
    system = system_message(context)
    head = _program(context) + _notes(context) + _objective(context) + _files(context)
    tail = _request(context)
    fixed = estimate_tokens(system) + estimate_tokens(head) + estimate_tokens(tail)
    if fixed > budget:
        raise PromptTooLarge(_too_large(context, system, fixed, budget))
    room = budget - fixed
    failure = _failure(context)
    if estimate_tokens(failure) > room:
        failure = ""
    room -= estimate_tokens(failure)
    journal, cut = _journal(context.journal, room // 2)
    room -= estimate_tokens(journal)
    rows = _rows(context)
    table, shown = _history(rows, room)
    user = head + table + journal + failure + tail
    return Prompt(
        system=system,
        user=user,
        tokens=estimate_tokens(system) + estimate_tokens(user),
        rows_shown=shown,
        rows_omitted=len([e for e in context.history if e.status not in UNTOLD]) - shown,
        journal_cut=cut,
    )


# --- the parts that are never cut ----------------------------------------------------


def _program(context: Context) -> str:
    return f"# Research program\n\n{context.program.strip()}\n\n"


def _notes(context: Context) -> str:
    """The human's steering notes (``ratchet note``), never cut: they are the human's word."""
    if not context.notes:
        return ""
    lines = "".join(f"- {printable(n.text)}\n" for n in context.notes)
    return (
        "# Notes from the human\n\nThe person running this study added these notes while it"
        f" ran (oldest first); follow them:\n\n{lines}\n"
    )


def _objective(context: Context) -> str:
    better = "lower" if context.goal == "minimize" else "higher"
    inc = context.incumbent
    applied = (
        "your change is applied to it and compared with it."
        if inc is None or not context.parent_commit or inc.commit == context.parent_commit
        else "your change is applied to the files below (another node of the search) and"
        " compared with the incumbent."
    )
    best = (
        f"The incumbent (the current best, #{inc.id}) has {context.metric_name} ="
        f" {_number(inc.metric)}; {applied}"
        if inc is not None and inc.metric is not None
        else "There is no measured incumbent yet."
    )
    return f"# Objective\n\nMetric: `{context.metric_name}`, {better} is better. {best}\n\n"


def _files(context: Context) -> str:
    commit = f" (at commit {context.parent_commit[:7]})" if context.parent_commit else ""
    parts = [f"# Editable files{commit}\n\nLine numbers are for reference only.\n"]
    for path in sorted(context.files):
        parts.append(f"\n## {path}\n\n```\n{numbered(context.files[path])}```\n")
    if not context.files:
        parts.append("\n(none exist yet: create one of the editable paths)\n")
    if context.limited:
        names = ", ".join(sorted(context.limited))
        parts.append(
            f"\nIn {names} only the lines between `EVOLVE-BLOCK-START` and `EVOLVE-BLOCK-END`"
            " may change; every other line, the marker lines included, must stay as it is.\n"
        )
    if context.readonly:
        parts.append("\n# Read-only context (do not edit these)\n")
        for path in sorted(context.readonly):
            parts.append(f"\n## {path}\n\n```\n{numbered(context.readonly[path])}```\n")
    return "".join(parts) + "\n"


def numbered(text: str) -> str:
    """``text`` with right-aligned line numbers, ``   12 | code``; ends with a newline."""
    lines = text.splitlines()
    width = max(4, len(str(len(lines))))
    return "".join(f"{n:>{width}} | {line}\n" for n, line in enumerate(lines, start=1))


def _request(context: Context) -> str:
    return (
        "# Your turn\n\nPropose the next experiment for the study"
        f" `{context.study_name}`: one focused change that you expect to make"
        f" `{context.metric_name}` better than the incumbent's. Learn from the experiments"
        " above: do not repeat what was already tried. Follow the answer format exactly.\n"
    )


def _too_large(context: Context, system: str, fixed: int, budget: int) -> str:
    sizes = [("the program", estimate_tokens(context.program))]
    sizes += [(path, estimate_tokens(text)) for path, text in sorted(context.files.items())]
    listed = ", ".join(f"{name} ~{tokens:,}" for name, tokens in sizes)
    return (
        f"the prompt needs about {fixed:,} tokens before any history ({listed}, plus"
        f" ~{estimate_tokens(system):,} of instructions) but [proposer] prompt_tokens is"
        f" {budget:,}; files are never cut — raise prompt_tokens in ratchet.toml if the"
        " model's context window allows, or make fewer or smaller files editable"
    )


# --- the parts that give way -----------------------------------------------------------


def _rows(context: Context) -> list[str]:
    """One table row per finished experiment, oldest first."""
    inc = context.incumbent.metric if context.incumbent else None
    return [_row(e, inc) for e in context.history if e.status not in UNTOLD]


def _row(e: Experiment, incumbent: float | None) -> str:
    delta = f"{e.metric - incumbent:+.4g}" if e.metric is not None and incumbent is not None else ""
    text = printable(e.description)
    if e.reason and e.status not in ROUTINE:
        reason = " / ".join(printable(line) for line in e.reason.splitlines() if line.strip())
        text += f" — {reason[:_REASON_CHARS]}"
    if e.void is not None:
        text += f" — voided by the human: {printable(e.void)[:_REASON_CHARS]}"
    text = text.replace("|", "\\|")
    return f"| {e.id} | {shown_status(e)} | {_number(e.metric)} | {delta} | {text} |\n"


def _history(rows: list[str], room: int) -> tuple[str, int]:
    """The newest rows that fit in ``room`` tokens (at most ``HISTORY_ROWS``), oldest first."""
    if not rows:
        return "", 0
    header = (
        "# Recent experiments (oldest first{omitted})\n\n"
        "| id | status | metric | delta vs incumbent | description |\n"
        "|---|---|---|---|---|\n"
    )
    used = estimate_tokens(header.format(omitted=", 000000 older ones not shown")) + 1
    kept: list[str] = []
    for row in reversed(rows[-HISTORY_ROWS:]):
        cost = estimate_tokens(row)
        if used + cost > room:
            break
        kept.append(row)
        used += cost
    if not kept:
        return "", 0
    left_out = len(rows) - len(kept)
    omitted = f", {left_out} older ones not shown" if left_out else ""
    return header.format(omitted=omitted) + "".join(reversed(kept)) + "\n", len(kept)


def _journal(journal: str, room: int) -> tuple[str, bool]:
    """The journal under a heading, cut at a line boundary to ``room`` tokens if needed."""
    if not journal.strip():
        return "", False
    header, note = "# Journal (lessons from earlier experiments)\n\n", "(cut to fit)\n"
    lines = journal.strip().splitlines()
    while lines:
        text = header + "\n".join(lines) + "\n\n"
        cut = len(lines) < len(journal.strip().splitlines())
        if cut:
            text = text[:-1] + note + "\n"
        if estimate_tokens(text) <= room:
            return text, cut
        lines.pop()
    return "", True


def _failure(context: Context) -> str:
    """The tail of the last failed run's log, bounded in lines and characters."""
    log = printable(context.last_failure_log, keep_lines=True).strip()
    if not log:
        return ""
    tail = "\n".join(log.splitlines()[-FAILURE_LINES:])[-FAILURE_CHARS:]
    return f"# The last failure (the end of its log)\n\n```\n{tail}\n```\n\n"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"
