"""Checks that cost no budget, run on every proposal before anything executes.

Each check returns a one-sentence reason when the proposal must be rejected,
or None. The first failing stage decides; the loop records the proposal as
``rejected`` with that reason and never runs it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from .models import Proposal
from .study import Study

__all__ = ["MAX_FILE_BYTES", "Rejection", "verify", "normalize_path", "diff_stats"]

MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class Rejection:
    """Why a proposal never ran, and which stage refused it."""

    stage: str
    reason: str


def normalize_path(path: str) -> str | None:
    """A clean relative POSIX path, or None when it is absolute or escapes the study."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return None
    return pure.as_posix()


def verify(proposal: Proposal, study: Study, current: Mapping[str, str]) -> Rejection | None:
    """Run the cheap stages in order: policy, change, syntax."""
    return _policy(proposal, study) or _changes(proposal, current) or _syntax(proposal)


def _policy(proposal: Proposal, study: Study) -> Rejection | None:
    if not proposal.edits:
        return Rejection("policy", "the proposal edits no file")
    for raw, text in proposal.edits.items():
        path = normalize_path(raw)
        if path is None:
            return Rejection("policy", f"{raw!r} is outside the study directory")
        if path.startswith(".git/") or path == ".git" or path.startswith(".ratchet"):
            return Rejection("policy", f"{path} is inside git or ratchet metadata")
        if study.is_protected(path):
            return Rejection("policy", f"{path} is protected (the evaluation must stay fixed)")
        if not study.is_editable(path):
            return Rejection("policy", f"{path} is not an editable file of this study")
        if len(text.encode("utf-8")) > MAX_FILE_BYTES:
            return Rejection("policy", f"{path} would exceed {MAX_FILE_BYTES} bytes")
    return None


def _changes(proposal: Proposal, current: Mapping[str, str]) -> Rejection | None:
    if all(current.get(normalize_path(p) or p) == text for p, text in proposal.edits.items()):
        return Rejection("policy", "the proposal changes nothing")
    return None


def _syntax(proposal: Proposal) -> Rejection | None:
    for path, text in proposal.edits.items():
        if not path.endswith(".py"):
            continue
        try:
            compile(text, path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            return Rejection("syntax", f"{path}:{exc.lineno}: {exc.msg}")
        except ValueError as exc:
            return Rejection("syntax", f"{path}: {exc}")
    return None


def diff_stats(current: Mapping[str, str], edits: Mapping[str, str]) -> dict[str, int]:
    """Lines added and removed, and files changed, by a proposal (stored in the ledger)."""
    added = removed = files = 0
    for raw, text in edits.items():
        before = current.get(normalize_path(raw) or raw, "").splitlines()
        after = text.splitlines()
        if before == after:
            continue
        files += 1
        for line in difflib.unified_diff(before, after, lineterm="", n=0):
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
    return {"added": added, "removed": removed, "files": files}
