"""Dedupe: was the same change already tried? Pure functions over the history.

Dedupe. Every proposal's change is stored in its ledger row as a normalized
patch (``meta["patch"]``): the changed lines only, per file, with whitespace
that does not change meaning folded away (trailing blanks, runs of spaces,
spaces around punctuation, blank lines, tabs in indentation) and no line
numbers, so the same idea proposed twice looks the same even from another
parent or with other formatting. A new proposal is a duplicate of an earlier
experiment when the patches are equal (compared by the SHA-256 of the full
patch, ``meta["patch_sha"]``), or near-identical: Jaccard similarity of their
sets of token 3-grams at least ``SIMILARITY`` (0.9) *and* the same numbers
in the same order. So a long patch that differs from an earlier one only in
a comment, a name or a word is a duplicate (re-running it would spend a full
budget to learn almost nothing), while the same line with another value
(``LR = 0.045`` after ``LR = 0.05``) is a new experiment however long the line:
in a hyperparameter search the value is the whole idea.
Indentation is kept, because in Python it changes meaning. A patch that is
empty after normalization (whitespace-only edits) is never a duplicate.

The same program. A proposal's patch depends on its parent, so the same
program reached from another parent looks like a new change. Each proposal
therefore also stores the SHA-256 of the editable files it produces
(``meta["program_sha"]``: the parent's files with the edits applied, byte for
byte); a proposal whose program was already measured is a duplicate whatever
its patch.

Only measured experiments count as earlier tries (``RAN``: judged, failed,
kept): a proposal that was rejected before it ran (a syntax error in another
part of the change, a lint finding) taught nothing about its idea, so its
corrected retry must run.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import PurePosixPath

from ..models import RAN, Experiment

__all__ = [
    "PATCH_CAP",
    "SIMILARITY",
    "normalized_patch",
    "patch_meta",
    "program_sha",
    "similarity",
    "find_duplicate",
]

PATCH_CAP = 20_000  # characters of normalized patch stored per ledger row
SIMILARITY = 0.9  # Jaccard similarity of token 3-grams from which a patch is a duplicate

_PUNCT_SPACE = re.compile(r"\s*([^\w\s])\s*")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"(?<![\w.])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")



def _normal_line(line: str) -> str:
    """Indentation kept (tabs expanded); other whitespace folded to what changes meaning."""
    body = line.strip()
    indent = line[: len(line) - len(line.lstrip())].expandtabs(4)
    body = _PUNCT_SPACE.sub(r"\1", body)
    return indent + " ".join(body.split())


def _normal_lines(text: str) -> list[str]:
    return [_normal_line(line) for line in text.splitlines() if line.strip()]


def normalized_patch(files: Mapping[str, str], edits: Mapping[str, str]) -> str:
    """The changed lines of a proposal, per file, with formatting noise removed.

    ``files`` are the editable files at the parent (path → text), ``edits``
    the proposal's new full texts. No hunk headers or line numbers: only
    ``--- path`` then ``-old`` / ``+new`` lines, files in sorted order.
    """
    parts: list[str] = []
    for raw in sorted(edits):
        path = PurePosixPath(raw.replace("\\", "/")).as_posix()
        before = _normal_lines(files.get(path, files.get(raw, "")))
        after = _normal_lines(edits[raw])
        changed = [
            line
            for line in difflib.unified_diff(before, after, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        if changed:
            parts.append(f"--- {path}")
            parts.extend(changed)
    return "\n".join(parts)


def program_sha(files: Mapping[str, str], edits: Mapping[str, str]) -> str:
    """SHA-256 of the editable files a proposal produces: ``files`` with ``edits`` applied.

    Exact bytes, no normalization: only the very same program is the same program.
    """
    program = dict(files)
    for raw, text in edits.items():
        program[PurePosixPath(raw.replace("\\", "/")).as_posix()] = text
    digest = hashlib.sha256()
    for path in sorted(program):
        for part in (path, program[path]):
            data = part.encode("utf-8", "surrogateescape")
            digest.update(b"%d:" % len(data) + data)
    return digest.hexdigest()


def patch_meta(patch: str, program: str | None = None) -> dict[str, str]:
    """What the ledger stores: the patch capped at ``PATCH_CAP``, the full patch's hash,
    and the produced program's hash (``program_sha``) when given."""
    meta = {"program_sha": program} if program else {}
    if not patch:
        return meta
    sha = hashlib.sha256(patch.encode()).hexdigest()
    return {"patch": patch[:PATCH_CAP], "patch_sha": sha, **meta}


def _shape(text: str) -> tuple[frozenset[int], tuple[str, ...]]:
    """A patch's token 3-grams (hashed, to keep the sets small) and its numbers, in order."""
    return _small_shape(text) if len(text) <= 2000 else _token_shape(text)


@lru_cache(maxsize=4096)
def _small_shape(text: str) -> tuple[frozenset[int], tuple[str, ...]]:
    """Cached: every proposal is compared with the same stored patches, most of them small."""
    return _token_shape(text)


def _token_shape(text: str) -> tuple[frozenset[int], tuple[str, ...]]:
    tokens = _TOKEN.findall(text)
    if len(tokens) < 3:
        grams = frozenset({hash(tuple(tokens))})
    else:
        grams = frozenset(hash(tuple(tokens[i : i + 3])) for i in range(len(tokens) - 2))
    return grams, tuple(_NUMBER.findall(text))


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' token 3-grams (1.0 = same grams)."""
    ga, gb = _shape(a)[0], _shape(b)[0]
    union = len(ga | gb)
    return len(ga & gb) / union if union else 1.0


def find_duplicate(
    patch: str,
    history: Sequence[Experiment],
    *,
    threshold: float = SIMILARITY,
    program: str | None = None,
) -> Experiment | None:
    """The earliest measured experiment with the same program, or the same or a
    near-identical change.

    Only rows that ran count (``RAN``): rejected, re-measurement, interrupted and
    running rows are not earlier tries. ``program`` is the proposal's
    ``program_sha``; an empty patch (whitespace-only edits) is never a duplicate.
    """
    if not patch:
        return None
    sha = hashlib.sha256(patch.encode()).hexdigest()
    grams, numbers = _shape(patch[:PATCH_CAP])
    for exp in history:
        if exp.status not in RAN:
            continue
        if program is not None and exp.meta.get("program_sha") == program:
            return exp
        theirs = exp.meta.get("patch")
        if not isinstance(theirs, str) or not theirs:
            continue
        if exp.meta.get("patch_sha") == sha:
            return exp
        other, their_numbers = _shape(theirs)
        small, large = sorted((len(grams), len(other)))
        if small < threshold * large or numbers != their_numbers:
            continue  # Jaccard <= small / large; another value is another experiment
        common = len(grams & other)
        if common / (len(grams) + len(other) - common) >= threshold:
            return exp
    return None
