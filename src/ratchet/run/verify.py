"""Checks that cost no budget, run on every proposal before anything executes.

Each check returns a one-sentence reason when the proposal must be rejected,
or None. The first failing stage decides; the loop records the proposal as
``rejected`` with ``"<stage>: <reason>"`` and never runs it. Stages, in order:

- policy: editable paths only (inside their EVOLVE-BLOCK regions where the
  pattern says so; never a read-only context file), nothing outside the study, in ``.git`` or
  ``.ratchet``, nothing protected, size limits, and a real change (symlinks
  are checked against the worktree by ``Workspace.symlinked``). Names a
  shell, a terminal or a later tool could misread are refused whatever the
  globs say: control or invisible characters, a component starting with
  ``-`` (``-rf/train.py``), empty components (``a//b``). Reasons show the
  name as a Python literal, so its control characters reach no terminal;
- syntax: every edited ``.py`` file compiles;
- lint: no *new* undefined name (F821) or redefinition of an unused name
  (F811) in an edited ``.py`` file, by ``ruff`` when it is installed (on PATH
  or next to the running Python). Only findings the parent's version of the
  file did not already have count, so a study whose code trips ruff (names
  made by ``exec``, say) is not blocked. Without ruff the stage is skipped and
  the loop says so once per run (``linter()`` is None);
- dedupe (``dedupe``, needs the history): the same program, or the same or a
  near-identical change, was already measured (see ``decide.dedupe``).
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..decide.dedupe import PATCH_CAP, find_duplicate
from ..models import Experiment, Proposal
from ..proposers.regions import check_edit
from ..study import Study

__all__ = [
    "MAX_FILE_BYTES",
    "LINT_RULES",
    "Rejection",
    "verify",
    "dedupe",
    "linter",
    "normalize_path",
    "diff_stats",
]

MAX_FILE_BYTES = 1_000_000
LINT_RULES = "F821,F811"  # undefined name; redefinition of an unused name
LINT_TIMEOUT_S = 30.0
_LINE = re.compile(r"\bline \d+")


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
    """Run the cheap stages in order: policy, change, syntax, lint."""
    return (
        _policy(proposal, study)
        or _regions(proposal, study, current)
        or _changes(proposal, current)
        or _syntax(proposal)
        or _lint(proposal, current)
    )


def dedupe(
    patch: str, history: Sequence[Experiment], program: str | None = None
) -> Rejection | None:
    """Refuse a change or a program already measured in this study (any tag): it would
    teach nothing new. ``program`` is the proposal's ``program_sha``."""
    earlier = find_duplicate(patch, history, program=program)
    if earlier is None:
        return None
    other_patch = earlier.meta.get("patch") != patch[:PATCH_CAP]
    same_program = program is not None and earlier.meta.get("program_sha") == program
    same = "program" if same_program and other_patch else "change"
    return Rejection("dedupe", f"same {same} as experiment #{earlier.id} ({earlier.status})")


def _policy(proposal: Proposal, study: Study) -> Rejection | None:
    if not proposal.edits:
        return Rejection("policy", "the proposal edits no file")
    for raw, text in proposal.edits.items():
        path = normalize_path(raw)
        if path is None:
            return Rejection("policy", f"{raw!r} is outside the study directory")
        unsafe = _unsafe_name(raw)
        if unsafe:
            return Rejection("policy", f"{raw!r} {unsafe}")
        if path.startswith(".git/") or path == ".git" or path.startswith(".ratchet"):
            return Rejection("policy", f"{path} is inside git or ratchet metadata")
        if study.is_protected(path):
            return Rejection("policy", f"{path} is protected (the evaluation must stay fixed)")
        if study.is_context(path):
            return Rejection("policy", f"{path} is a read-only context file of this study")
        if not study.is_editable(path):
            return Rejection("policy", f"{path} is not an editable file of this study")
        if len(text.encode("utf-8")) > MAX_FILE_BYTES:
            return Rejection("policy", f"{path} would exceed {MAX_FILE_BYTES} bytes")
    return None


def _regions(proposal: Proposal, study: Study, current: Mapping[str, str]) -> Rejection | None:
    """Part of the policy stage: a ``:EVOLVE-BLOCK`` file may change only inside its regions."""
    for raw, text in proposal.edits.items():
        path = normalize_path(raw) or raw
        old = current.get(path)
        if old is None:
            continue
        reason = check_edit(path, old, text, study.editable)
        if reason:
            return Rejection("policy", reason)
    return None


def _unsafe_name(raw: str) -> str | None:
    """What makes a relative path's name unsafe to create, or None when it is plain."""
    if not raw.isprintable():  # \n, ESC, NUL, bidi overrides, zero-width and odd spaces
        return "has a control or invisible character in its name"
    parts = [p for p in raw.replace("\\", "/").split("/") if p != "."]
    if any(p.startswith("-") for p in parts):
        return "has a name starting with '-', which commands would read as an option"
    if "" in parts:
        return "has an empty path component (a doubled or trailing '/')"
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


def linter() -> str | None:
    """The ``ruff`` executable: on PATH, or installed next to the running Python."""
    beside = Path(sys.executable).parent / "ruff"
    return shutil.which("ruff") or (str(beside) if beside.is_file() else None)


def _lint(proposal: Proposal, current: Mapping[str, str]) -> Rejection | None:
    edited = sorted(p for p in proposal.edits if p.endswith(".py"))
    ruff = linter() if edited else None
    if ruff is None:
        return None
    for raw in edited:
        path = normalize_path(raw) or raw
        found = _findings(ruff, path, proposal.edits[raw])
        if not found:
            continue
        old = Counter(_LINE.sub("line", m) for _, m in _findings(ruff, path, current.get(path, "")))
        for row, message in found:
            key = _LINE.sub("line", message)  # "redefinition of `f` from line 3" moves with edits
            if old[key] == 0:
                return Rejection("lint", f"{path}:{row}: {message}")
            old[key] -= 1
    return None


def _findings(ruff: str, path: str, text: str) -> list[tuple[int, str]]:
    """(line, "F821 Undefined name `x`") per finding; none when ruff cannot be run."""
    command = [ruff, "check", "--isolated", "--no-cache", "--select", LINT_RULES]
    command += ["--output-format", "json", "--stdin-filename", path, "-"]
    try:
        done = subprocess.run(
            command, input=text, capture_output=True, text=True, timeout=LINT_TIMEOUT_S
        )
        found = json.loads(done.stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    if not isinstance(found, list):
        return []
    return [
        (int(f.get("location", {}).get("row", 0)), f"{f.get('code')} {f.get('message')}")
        for f in found
        if isinstance(f, dict)
    ]


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
