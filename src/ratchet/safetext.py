"""Text that came from a proposer or a candidate, made safe to show.

Descriptions, rationales, reasons and log lines are written by an LLM, a
coding agent or the candidate's own output, so they may hold escape sequences
(which recolour, move the cursor or retitle a terminal), line breaks (a fake
row in ``results.tsv`` or on the console) or bidirectional overrides. The
ledger keeps them as they came (nothing recorded is changed); ``printable`` is
applied where text leaves Ratchet: the console, ``results.tsv``, the journal,
``ratchet log``/``show``/``status``, reports, commit messages and prompts.
``ratchet log --json`` keeps the raw text, which JSON escapes.
"""

from __future__ import annotations

import re

__all__ = ["printable", "clip", "counted"]

# Whole terminal sequences go, not just their ESC: CSI (colours, cursor moves), OSC (titles,
# links) and two-character escapes; what is left of a broken one is dropped below.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


def printable(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with printable characters only (any script); whitespace becomes a space.

    One line by default: every run of whitespace (tabs and line breaks
    included) becomes one space, and the ends are stripped. With
    ``keep_lines`` (a log shown as a log) newlines and tabs stay, and
    ``\\r`` becomes a newline. Other control and format characters (ESC,
    NUL, DEL, C1 codes, bidi overrides, zero-width characters) are dropped.
    """
    if text.isprintable():  # the common case, at C speed: results.tsv is rewritten per experiment
        return text if keep_lines else " ".join(text.split())
    kept = []
    for char in _ESCAPES.sub("", text.replace("\r\n", "\n") if keep_lines else text):
        if char.isprintable():
            kept.append(char)
        elif keep_lines and char in "\n\t":
            kept.append(char)
        elif keep_lines and char == "\r":
            kept.append("\n")
        elif char.isspace():
            kept.append(" ")
    clean = "".join(kept)
    return clean if keep_lines else " ".join(clean.split())


def clip(text: str, width: int) -> str:
    """``printable(text)`` in at most ``width`` characters, a cut one ending in an ellipsis."""
    text = printable(text)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def counted(count: int, noun: str) -> str:
    """``1 experiment``, ``2 experiments``: a count with its noun in the right number."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
