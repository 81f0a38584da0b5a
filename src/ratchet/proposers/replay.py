"""Proposals read from a JSONL file, for tests and for reproducing a run.

One proposal a line::

    {"description": "double the lr", "edits": {"train.py": "...full text..."}, "rationale": "..."}

Blank lines are skipped; line numbers are the file's physical line numbers
(1-based), so error messages point where an editor would. Each proposal
stores ``{"replay_line": n}`` in its meta; after a restart the proposer
starts after the highest ``replay_line`` recorded under the same tag, so no
line is replayed twice. The file is read again on every call, so lines
appended while a run is going are picked up, and a bad line anywhere is
reported at once rather than after the lines before it have run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ratchet.errors import ProposalError, ProposalsExhausted
from ratchet.models import Context, Proposal

__all__ = ["ReplayProposer", "read_replay_file"]

_KEYS = frozenset({"description", "edits", "rationale"})
_FIX = 'each line must be {"description": str, "edits": {path: new full text}}'


class ReplayProposer:
    """Returns the proposals of a JSONL file in order, resuming after the last one recorded."""

    name = "replay"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def propose(self, context: Context) -> Proposal:
        """The first proposal after the highest ``replay_line`` recorded under ``context.tag``."""
        done = _last_replayed(context, self.name)
        for number, proposal in read_replay_file(self.path):
            if number > done:
                return proposal
        raise ProposalsExhausted(
            f"replay file {self.path} has no proposal after line {done} — "
            "append proposals to it or switch to another proposer."
        )


def _last_replayed(context: Context, name: str) -> int:
    """The highest replay line this proposer already used in this tag (0 when none).

    Rows proposed by another member of an ensemble are not its lines; rows from
    before proposers were recorded (``""``) are.
    """
    lines = [
        e.meta.get("replay_line")
        for e in context.history
        if e.tag == context.tag and isinstance(e.meta, dict) and e.proposer in ("", name)
    ]
    return max((n for n in lines if type(n) is int), default=0)


def read_replay_file(path: Path) -> list[tuple[int, Proposal]]:
    """Parse every non-blank line into (line number, ``Proposal``), or raise ``ProposalError``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProposalError(
            f"replay file {path} not found — check the path given to --replay."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProposalError(f"replay file {path} cannot be read ({exc}) — fix the file.") from None
    return [
        (number, _parse_line(path, number, line))
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _parse_line(path: Path, number: int, line: str) -> Proposal:
    """One line into a ``Proposal``; any defect names the file, the line and the fix."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _bad(path, number, f"is not valid JSON ({exc.msg} at column {exc.colno})") from None
    problem = _shape_problem(data)
    if problem:
        raise _bad(path, number, problem)
    return Proposal(
        description=data["description"],
        edits=dict(data["edits"]),
        rationale=data.get("rationale", ""),
        meta={"proposer": "replay", "replay_line": number},
    )


def _shape_problem(data: Any) -> str:
    """What is wrong with a decoded line, or "" when it is a valid proposal."""
    if not isinstance(data, dict):
        return f"is a JSON {type(data).__name__}, not an object"
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        return f"has unknown key(s) {', '.join(map(repr, unknown))}"
    if not isinstance(data.get("description"), str) or not data["description"].strip():
        return 'needs a non-empty string "description"'
    edits = data.get("edits")
    if not isinstance(edits, dict) or not edits:
        return 'needs a non-empty object "edits" mapping paths to new file text'
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in edits.items()):
        return '"edits" must map path strings to file-text strings'
    if not isinstance(data.get("rationale", ""), str):
        return '"rationale" must be a string'
    return ""


def _bad(path: Path, number: int, problem: str) -> ProposalError:
    """The error for a defective line: file, line number, problem and fix."""
    return ProposalError(f"replay file {path}, line {number}: the line {problem} — {_FIX}.")
