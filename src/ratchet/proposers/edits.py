"""The one edit parser: a model's answer → a description and full new file texts.

Three formats are accepted, all ending as the same ``edits`` mapping (path →
new full text) that every proposer returns:

- SEARCH/REPLACE blocks (the default the prompt asks for)::

      train.py
      <<<<<<< SEARCH
      exact lines from the current file
      =======
      replacement lines
      >>>>>>> REPLACE

- unified diffs (``--- a/train.py`` / ``+++ b/train.py`` / ``@@`` hunks); each
  hunk is applied by its content, the line numbers only break ties;
- whole files: the path on the line before a fenced block (or in the fence's
  info string), the block holding the complete new text. Whole files are
  only read from answers with no SEARCH/REPLACE block and no diff, so a code
  snippet shown next to a patch is never mistaken for a file.

Matching is tolerant where models are sloppy and strict where a guess could
silently change the wrong code: trailing whitespace, trailing newlines,
leading/trailing blank lines, a uniform indentation shift and line numbers
copied from the prompt (``  12 | ``) are forgiven; a SEARCH that matches
nothing or several places is an ``EditError`` whose message is the exact
reason, written to be sent back to the model in a repair round-trip. File
names are matched with or without the study's path (``examples/sine/train.py``
and ``./train.py`` both mean ``train.py``). Several blocks, for several
files, may appear in one answer; blocks on one file apply in order.

The first line outside any block is the description; the other prose lines
are the rationale. Answers in tags, as ShinkaEvolve-style prompts ask for
(``<NAME>hex_grid</NAME>``, ``<DESCRIPTION>…</DESCRIPTION>``, ``<DIFF>…``), lose
the tag markers: the description is the first line of ``DESCRIPTION``, else of
``NAME``, else the first prose line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["EditError", "ParsedAnswer", "parse_answer", "replace_once", "resolve_path"]

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$", re.IGNORECASE)
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*(.*?)\s*$")
_HUNK = re.compile(r"^@@\s*-(\d+)(?:,\d+)?\s+\+\d+(?:,\d+)?\s*@@")
_LINE_NUMBER = re.compile(r"^\s*\d+ ?\| ?")
_NAME_PREFIX = re.compile(r"^(?:file(?:name)?|path)\s*:\s*", re.IGNORECASE)
_DESCRIPTION_PREFIX = re.compile(r"^(?:description|summary|change)\s*:\s*", re.IGNORECASE)
_TAG = re.compile(r"<(/?)([A-Z][A-Z0-9_]*)>")  # <NAME>, </DESCRIPTION>: uppercase, no attributes
_DESCRIBING_TAGS = ("DESCRIPTION", "NAME")  # where a tagged answer says what it changes
_MAX_DESCRIPTION = 200
_MAX_RATIONALE = 2000


class EditError(ValueError):
    """The answer cannot be applied; ``str(error)`` is the exact reason, fit to send back."""


@dataclass(frozen=True)
class ParsedAnswer:
    """What an answer says: a one-line description, the new file texts, the prose around."""

    description: str
    edits: dict[str, str]
    rationale: str = ""
    formats: tuple[str, ...] = ()  # "search-replace", "diff", "whole-file"


@dataclass
class _Patch:
    """One search/replace pair for one file, from a block or a diff hunk."""

    path: str
    search: list[str]
    replace: list[str]
    where: str  # "the SEARCH block at line 4" — for messages
    hint: int | None = None  # 1-based line the diff says the hunk starts at
    new_file: bool = False


@dataclass
class _Scan:
    """The answer's lines and which of them belong to blocks (not prose)."""

    lines: list[str]
    used: set[int] = field(default_factory=set)

    def take(self, start: int, end: int) -> None:
        self.used.update(range(start, end))


def parse_answer(answer: str, files: Mapping[str, str]) -> ParsedAnswer:
    """Parse ``answer`` against ``files`` (the current texts), or raise ``EditError``."""
    scan = _Scan(answer.replace("\r\n", "\n").split("\n"))
    patches = _search_replace_blocks(scan, files)
    formats = ["search-replace"] if patches else []
    diff_patches = _diff_hunks(scan, files)
    if diff_patches:
        formats.append("diff")
    patches += diff_patches
    if patches:
        edits = _apply(patches, files)
    else:
        edits = _whole_files(scan, files)
        unnamed = next((n for n, line in enumerate(scan.lines) if _FENCE.match(line)), None)
        if not edits and unnamed is not None:
            raise EditError(
                f"the code block at line {unnamed + 1} names no file: put the file's path alone"
                " on the line before it (whole file), or use SEARCH/REPLACE blocks"
            )
        if not edits:
            raise EditError(
                "the answer contains no edit: give the file's path on its own line, then"
                " <<<<<<< SEARCH, the exact current lines, =======, the new lines, >>>>>>> REPLACE"
            )
        formats.append("whole-file")
    description, rationale = _prose(scan)
    return ParsedAnswer(
        description=description or "edit " + ", ".join(sorted(edits)),
        edits=edits,
        rationale=rationale,
        formats=tuple(formats),
    )


# --- file names -----------------------------------------------------------------------


def resolve_path(name: str, files: Mapping[str, str]) -> str:
    """The known file ``name`` means (with or without the study path), else ``name`` cleaned."""
    clean = _clean_name(name)
    if clean in files:
        return clean
    matches = [known for known in files if clean.endswith("/" + known)]
    return max(matches, key=len) if matches else clean


def _clean_name(name: str) -> str:
    text = name.strip().strip("#").strip()
    text = _NAME_PREFIX.sub("", text).strip().strip("*`'\"").strip()
    text = text.rstrip(":").strip("*`'\"").replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text


def _looks_like_path(line: str, files: Mapping[str, str]) -> bool:
    """A line that is only a file name (``train.py``, ``**src/a.py**``, ``File: a.py``)."""
    clean = _clean_name(line)
    if not clean or any(ch.isspace() for ch in clean) or len(clean) > 200:
        return False
    if resolve_path(clean, files) in files:
        return True
    return re.fullmatch(r"[\w./@+-]*\w\.\w+|[\w.@+-]+/[\w./@+-]+", clean) is not None


def _diff_name(header: str, files: Mapping[str, str]) -> str | None:
    """The path of a ``---``/``+++`` header line; None for /dev/null."""
    name = header[4:].split("\t")[0].strip()
    if name == "/dev/null":
        return None
    for candidate in (name[2:] if name[:2] in ("a/", "b/") else None, name):
        if candidate and resolve_path(candidate, files) in files:
            return resolve_path(candidate, files)
    return _clean_name(name[2:] if name[:2] in ("a/", "b/") else name)


# --- SEARCH/REPLACE blocks --------------------------------------------------------------


def _search_replace_blocks(scan: _Scan, files: Mapping[str, str]) -> list[_Patch]:
    patches: list[_Patch] = []
    lines, i = scan.lines, 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        path, name_at = _block_name(scan, i, files, patches)
        where = f"the SEARCH block at line {i + 1}" + (f" ({path})" if path else "")
        divider = _find(lines, i + 1, _DIVIDER, stop=_SEARCH)
        if divider is None:
            raise EditError(f"{where} has no ======= line between its SEARCH and REPLACE parts")
        end = _find(lines, divider + 1, _REPLACE, stop=_SEARCH)
        if end is None:
            raise EditError(f"{where} is not closed by a >>>>>>> REPLACE line")
        if path is None:
            raise EditError(
                f"{where} names no file: put the file's path alone on the line before"
                " <<<<<<< SEARCH"
            )
        search, replace = lines[i + 1 : divider], lines[divider + 1 : end]
        patches.append(_Patch(path, search, replace, where))
        scan.take(name_at if name_at is not None else i, end + 1)
        i = _skip_closing_fence(scan, end + 1)
    return patches


def _find(
    lines: list[str], start: int, pattern: re.Pattern[str], stop: re.Pattern[str]
) -> int | None:
    for j in range(start, len(lines)):
        if pattern.match(lines[j]):
            return j
        if stop.match(lines[j]):
            return None
    return None


def _block_name(
    scan: _Scan, at: int, files: Mapping[str, str], earlier: list[_Patch]
) -> tuple[str | None, int | None]:
    """The file a SEARCH marker edits: the path line above it (past a fence), or a fallback.

    Returns the path and the index of the line that named it (None when none did).
    """
    j = at - 1
    while j >= 0 and not scan.lines[j].strip() and j not in scan.used:
        j -= 1
    if j >= 0 and j not in scan.used:
        fence = _FENCE.match(scan.lines[j])
        if fence:
            named = _fence_name(fence.group(2), files)
            if named:
                return named, j
            k = j - 1
            while k >= 0 and not scan.lines[k].strip() and k not in scan.used:
                k -= 1
            if k >= 0 and k not in scan.used and _looks_like_path(scan.lines[k], files):
                return resolve_path(scan.lines[k], files), k
            return _fallback_name(files, earlier), j
        if _looks_like_path(scan.lines[j], files):
            return resolve_path(scan.lines[j], files), j
    return _fallback_name(files, earlier), None


def _fallback_name(files: Mapping[str, str], earlier: list[_Patch]) -> str | None:
    """No name given: the previous block's file, else the only editable file."""
    if earlier:
        return earlier[-1].path
    return next(iter(files)) if len(files) == 1 else None


def _fence_name(info: str, files: Mapping[str, str]) -> str | None:
    """A file name in a fence's info string: ```python train.py, ```train.py, ```py:a.py."""
    for word in re.split(r"[\s:=]+", info):
        word = word.strip("\"'")
        if word and ("." in word or "/" in word) and _looks_like_path(word, files):
            return resolve_path(word, files)
    return None


def _skip_closing_fence(scan: _Scan, i: int) -> int:
    """Mark a fence that closes right after a block as part of it."""
    j = i
    while j < len(scan.lines) and not scan.lines[j].strip():
        j += 1
    if j < len(scan.lines) and re.fullmatch(r"\s*(```+|~~~+)\s*", scan.lines[j]):
        scan.take(i, j + 1)
        return j + 1
    return i


# --- unified diffs ------------------------------------------------------------------


def _diff_hunks(scan: _Scan, files: Mapping[str, str]) -> list[_Patch]:
    patches: list[_Patch] = []
    lines, i = scan.lines, 0
    path: str | None = None
    new_file = False
    while i < len(lines):
        if i in scan.used:
            i += 1
            continue
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _diff_name(line, files), _diff_name(lines[i + 1], files)
            if new is None:
                raise EditError(
                    f"the diff at line {i + 1} deletes {old}: deleting files is not supported"
                )
            path, new_file = new, old is None
            scan.take(i, i + 2)
            i += 2
            continue
        hunk = _HUNK.match(line)
        if hunk or (line.startswith("@@") and path is not None):
            if path is None:
                path = _fallback_name(files, patches)
            if path is None:
                raise EditError(
                    f"the diff hunk at line {i + 1} names no file: start the diff with"
                    " --- a/PATH and +++ b/PATH lines"
                )
            i = _read_hunk(scan, i, path, int(hunk.group(1)) if hunk else None, new_file, patches)
            continue
        if line.startswith("diff --git ") or line.startswith("index "):
            scan.take(i, i + 1)
        i += 1
    return patches


def _read_hunk(
    scan: _Scan, at: int, path: str, hint: int | None, new_file: bool, out: list[_Patch]
) -> int:
    """Read one hunk's body (context, -, + lines) into a patch; return the next line index."""
    lines, j = scan.lines, at + 1
    body: list[str] = []
    while j < len(lines):
        line = lines[j]
        if line.startswith("@@") or (line.startswith("--- ") and _next_is_plus(lines, j)):
            break
        if line[:1] in (" ", "+", "-", "\\") or line == "":
            body.append(line)
            j += 1
            continue
        break
    while body and body[-1] == "":
        body.pop()
        j -= 1
    search = [b[1:] for b in body if b[:1] in (" ", "-", "")]
    replace = [b[1:] for b in body if b[:1] in (" ", "+", "")]
    where = f"the diff hunk at line {at + 1} ({path})"
    out.append(_Patch(path, search, replace, where, hint=hint, new_file=new_file))
    scan.take(at, j)
    return j


def _next_is_plus(lines: list[str], j: int) -> bool:
    return j + 1 < len(lines) and lines[j + 1].startswith("+++ ")


# --- whole files ----------------------------------------------------------------------


def _whole_files(scan: _Scan, files: Mapping[str, str]) -> dict[str, str]:
    """Named fenced blocks → complete new texts."""
    edits: dict[str, str] = {}
    lines, i = scan.lines, 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence or i in scan.used:
            i += 1
            continue
        close = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), None
        )
        if close is None:
            raise EditError(f"the code block at line {i + 1} is never closed by {fence.group(1)}")
        name, name_at = _fence_name(fence.group(2), files), i
        if name is None:
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            if k >= 0 and k not in scan.used and _looks_like_path(lines[k], files):
                name, name_at = resolve_path(lines[k], files), k
        if name is not None:
            if name in edits:
                raise EditError(f"{name} is given twice as a whole file: send it once")
            body = lines[i + 1 : close]
            edits[name] = "\n".join(body) + "\n" if body else ""
            scan.take(name_at, close + 1)
        i = close + 1
    return edits


# --- applying patches ---------------------------------------------------------------


def _apply(patches: list[_Patch], files: Mapping[str, str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for patch in patches:
        current = texts.get(patch.path, files.get(patch.path))
        if current is None:
            if any(line.strip() for line in patch.search):
                editable = ", ".join(sorted(files)) or "none"
                raise EditError(
                    f"{patch.where} edits {patch.path}, which is not an editable file here"
                    f" (editable: {editable}); edit only those files"
                )
            texts[patch.path] = _join(patch.replace, ending=True)
            continue
        texts[patch.path] = replace_once(
            current,
            patch.search,
            patch.replace,
            path=patch.path,
            where=patch.where,
            hint=patch.hint,
        )
    return texts


def replace_once(
    text: str,
    search: list[str],
    replace: list[str],
    *,
    path: str,
    where: str = "the SEARCH block",
    hint: int | None = None,
) -> str:
    """``text`` with the one region matching ``search`` replaced, tolerantly; or ``EditError``.

    Passes, strictest first: exact lines; trailing whitespace ignored; leading and
    trailing blank lines of the search dropped; indentation ignored (the
    replacement then shifts by the same amount). Line-number prefixes copied from
    the prompt are removed first when every search line has one.
    """
    search, replace = _strip_numbers(search, replace)
    lines = text.split("\n")
    ending = text.endswith("\n")
    if ending:
        lines.pop()
    if not any(s.strip() for s in search):
        if not text.strip():
            return _join(replace, ending=True)
        raise EditError(
            f"{where} has an empty SEARCH part, but {path} is not empty: copy the exact"
            " lines to change into the SEARCH part"
        )
    trimmed = _trim_blank(search)
    for candidate, same in (
        (search, _exact),
        (search, _rstripped),
        (trimmed, _rstripped),
        (trimmed, _stripped),
    ):
        starts = _matches(lines, candidate, same)
        if not starts:
            continue
        start = _pick(starts, hint, where, path)
        body = replace if len(candidate) == len(search) else _trim_blank(replace)
        if same is _stripped:
            body = _reindent(body, candidate, lines[start : start + len(candidate)])
        new = lines[:start] + body + lines[start + len(candidate) :]
        return _join(new, ending=ending)
    raise EditError(_no_match(where, path, lines, trimmed))


def _exact(a: str, b: str) -> bool:
    return a == b


def _rstripped(a: str, b: str) -> bool:
    return a.rstrip() == b.rstrip()


def _stripped(a: str, b: str) -> bool:
    return a.strip() == b.strip()


def _matches(lines: list[str], search: list[str], same: Callable[[str, str], bool]) -> list[int]:
    n = len(search)
    return [
        i for i in range(len(lines) - n + 1) if all(same(lines[i + k], search[k]) for k in range(n))
    ]


def _pick(starts: list[int], hint: int | None, where: str, path: str) -> int:
    if len(starts) == 1:
        return starts[0]
    if hint is not None:
        return min(starts, key=lambda s: abs(s + 1 - hint))
    shown = ", ".join(str(s + 1) for s in starts[:5])
    raise EditError(
        f"{where} matches {len(starts)} places in {path} (lines {shown}): include more"
        " surrounding lines in the SEARCH part so it matches exactly one"
    )


def _strip_numbers(search: list[str], replace: list[str]) -> tuple[list[str], list[str]]:
    """Drop ``  12 | `` prefixes copied from the numbered listing in the prompt."""
    numbered = [s for s in search if s.strip()]
    if not numbered or not all(_LINE_NUMBER.match(s) for s in numbered):
        return search, replace
    strip = [_LINE_NUMBER.sub("", s, count=1) for s in search]
    if all(_LINE_NUMBER.match(r) for r in replace if r.strip()):
        replace = [_LINE_NUMBER.sub("", r, count=1) for r in replace]
    return strip, replace


def _trim_blank(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(body: list[str], search: list[str], found: list[str]) -> list[str]:
    """Shift ``body`` by the indentation difference between ``search`` and ``found``."""
    first = next((k for k, s in enumerate(search) if s.strip()), 0)
    want, have = _indent(found[first]), _indent(search[first])
    if want.startswith(have):
        extra = want[len(have) :]
        return [extra + line if line.strip() else line for line in body]
    if have.startswith(want):
        cut = have[len(want) :]
        return [line[len(cut) :] if line.startswith(cut) else line for line in body]
    return body


def _join(lines: list[str], ending: bool) -> str:
    text = "\n".join(lines)
    return text + "\n" if ending and text else text


def _no_match(where: str, path: str, lines: list[str], search: list[str]) -> str:
    """The reason a SEARCH failed, with the closest lines of the file to help a repair."""
    first = next(s for s in search if s.strip())
    stripped = [line.strip() for line in lines]
    close = difflib.get_close_matches(first.strip(), stripped, n=1, cutoff=0.5)
    reason = f"{where} does not match {path}: the SEARCH lines must be copied exactly"
    if not close:
        return f"{reason}; no line of {path} resembles {first.strip()!r}"
    at = stripped.index(close[0])
    region = lines[at : at + max(1, len(search))]
    shown = "\n".join(region)
    return f"{reason}; the closest lines are {at + 1}-{at + len(region)}:\n{shown}"


# --- prose ----------------------------------------------------------------------------


def _prose(scan: _Scan) -> tuple[str, str]:
    """The first line outside blocks (the description) and the rest (the rationale).

    Fence lines are skipped, and so is an unnamed code block (a pair of fences
    with nothing used between them): a snippet is not a description.
    """
    prose: list[str] = []
    lines, i = scan.lines, 0
    while i < len(lines):
        if i in scan.used:
            i += 1
            continue
        if _FENCE.match(lines[i]):
            i = _after_snippet(scan, i)
            continue
        if lines[i].strip():
            prose.append(lines[i].strip())
        i += 1
    prose, tagged = _untag(prose)
    if not prose:
        return "", ""
    first = next((tagged[t] for t in _DESCRIBING_TAGS if t in tagged), 0)
    description = _DESCRIPTION_PREFIX.sub("", prose[first].strip("#*-> `").strip()).strip("*` ")
    rationale = "\n".join(prose[:first] + prose[first + 1 :])
    return description[:_MAX_DESCRIPTION], rationale[:_MAX_RATIONALE]


def _untag(prose: list[str]) -> tuple[list[str], dict[str, int]]:
    """Prose lines without tag markers (a line of markers only is dropped), and for each tag
    the index of its first line of text. A line's text belongs to the tag it opens, else to
    the tag still open from an earlier line."""
    kept: list[str] = []
    first: dict[str, int] = {}
    open_tag: str | None = None
    for line in prose:
        markers = list(_TAG.finditer(line))
        text = _TAG.sub("", line).strip()
        owner = open_tag
        if markers and markers[0].start() == 0 and not markers[0].group(1):
            owner = markers[0].group(2)
        for marker in markers:
            open_tag = None if marker.group(1) else marker.group(2)
        if text:
            if owner is not None:
                first.setdefault(owner, len(kept))
            kept.append(text)
    return kept, first


def _after_snippet(scan: _Scan, at: int) -> int:
    """The line after a code block opened at ``at``, or after the lone fence line."""
    for j in range(at + 1, len(scan.lines)):
        if j in scan.used:
            return at + 1
        if _FENCE.match(scan.lines[j]):
            return j + 1
    return at + 1
