"""Editable regions: ``[files] editable = ["initial_program.py:EVOLVE-BLOCK"]``.

A pattern ending in ``:EVOLVE-BLOCK`` makes only the lines between a
``# EVOLVE-BLOCK-START`` and the next ``# EVOLVE-BLOCK-END`` comment of the
matching files editable — the markers OpenEvolve and ShinkaEvolve use, so
their examples port as they are. The marker lines themselves and everything
outside stay fixed. A file may hold several regions; they do not nest.

Pure functions only: ``split_pattern`` (the glob and whether it is
region-limited), ``find_regions`` (the editable line ranges of a text),
``allowed_lines`` (which lines the offline proposers may touch), and
``check_edit`` (the reason an edit reaches outside, or None) — the check
``verify`` runs before a candidate is committed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from ..errors import ConfigError

__all__ = [
    "SUFFIX",
    "START",
    "END",
    "split_pattern",
    "region_globs",
    "is_region_limited",
    "find_regions",
    "allowed_lines",
    "check_edit",
]

SUFFIX = ":EVOLVE-BLOCK"
START = "EVOLVE-BLOCK-START"
END = "EVOLVE-BLOCK-END"
_MARKER = re.compile(r"^\s*(?:#|//|--|/\*)\s*(EVOLVE-BLOCK-(?:START|END))\b")

Region = tuple[int, int]  # first and last editable line (1-based, inclusive; empty: last < first)


def split_pattern(pattern: str) -> tuple[str, bool]:
    """``"prog.py:EVOLVE-BLOCK"`` → ``("prog.py", True)``; a plain glob → ``(glob, False)``."""
    if pattern.endswith(SUFFIX):
        return pattern[: -len(SUFFIX)], True
    return pattern, False


def region_globs(patterns: Sequence[str]) -> list[str]:
    """The globs of the region-limited patterns."""
    return [glob for glob, limited in map(split_pattern, patterns) if limited]


def is_region_limited(path: str, patterns: Sequence[str]) -> bool:
    """True when ``path`` (relative, POSIX) matches a ``:EVOLVE-BLOCK`` pattern."""
    pure = PurePosixPath(path)
    return any(pure.match(glob) or path == glob for glob in region_globs(patterns))


def find_regions(path: str, text: str) -> list[Region]:
    """The editable line ranges of ``text``, in order; ``ConfigError`` on unbalanced markers."""
    regions, start = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = _MARKER.match(line)
        if not match:
            continue
        if match.group(1) == START:
            if start is not None:
                raise _unbalanced(path, number, f"a second {START} before {END}")
            start = number
        else:
            if start is None:
                raise _unbalanced(path, number, f"{END} without an {START} above it")
            regions.append((start + 1, number - 1))
            start = None
    if start is not None:
        raise _unbalanced(path, start, f"{START} without an {END} below it")
    return regions


def _unbalanced(path: str, line: int, problem: str) -> ConfigError:
    return ConfigError(
        f"{path}, line {line}: {problem} — every # {START} needs its own # {END} below it"
    )


def allowed_lines(path: str, text: str, patterns: Sequence[str]) -> set[int] | None:
    """The lines of ``path`` a proposer may change; None when the whole file is editable.

    A region-limited file with no markers has no editable line (an empty set).
    """
    if not is_region_limited(path, patterns):
        return None
    return {n for first, last in find_regions(path, text) for n in range(first, last + 1)}


def check_edit(path: str, old: str, new: str, patterns: Sequence[str]) -> str | None:
    """Why ``old`` → ``new`` changes ``path`` outside its regions, or None when it does not.

    The text outside the regions (marker lines included) must come back
    unchanged and in the same order; the regions' bodies may change freely,
    grow or shrink. The reason names the first changed line outside, as a
    line number of the old file.
    """
    if not is_region_limited(path, patterns) or old == new:
        return None
    before = _outside(path, old)
    if not before[1]:
        return f"{path} has no # {START} / # {END} region, so nothing in it may change"
    try:
        after = _outside(path, new)
    except ConfigError:
        return f"the edit unbalances the EVOLVE-BLOCK markers of {path} — keep every marker line"
    return _first_difference(path, before, after)


Segments = tuple[list[tuple[int, list[str]]], list[Region]]


def _outside(path: str, text: str) -> Segments:
    """The fixed segments of ``text`` as (first line number, lines), and its regions."""
    lines, regions = text.splitlines(), find_regions(path, text)
    segments, cursor = [], 1
    for first, last in regions:
        segments.append((cursor, lines[cursor - 1 : first - 1]))
        cursor = last + 1
    segments.append((cursor, lines[cursor - 1 :]))
    return segments, regions


def _first_difference(path: str, before: Segments, after: Segments) -> str | None:
    """The reason naming the first fixed line that differs, or None when all match."""
    spans = ", ".join(f"{a}-{b}" for a, b in before[1])
    fix = f"only lines {spans} (inside the EVOLVE-BLOCK markers) may change"
    if len(before[0]) != len(after[0]):
        return f"the edit adds or removes an EVOLVE-BLOCK region of {path} — {fix}"
    for (start, old), (_, new) in zip(before[0], after[0], strict=True):
        if old == new:
            continue
        pairs = zip(old, new, strict=False)
        index = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(old), len(new)))
        return f"the edit changes {path} line {start + index}, outside the EVOLVE-BLOCK — {fix}"
    return None
