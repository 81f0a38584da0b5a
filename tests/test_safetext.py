"""printable: what a proposer or a candidate wrote, fit for a terminal, a TSV cell or a prompt."""

from __future__ import annotations

import pytest

from ratchet.safetext import printable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tune the lr", "tune the lr"),
        ("a\nb\tc\r\nd", "a b c d"),  # a line break would be a fake row
        ("\x1b[2J\x1b[31mred\x1b[0m", "red"),  # whole CSI sequences go
        ("\x1b]0;new title\x07x", "x"),  # OSC (window title)
        ("a\x00b\x7fc\x9bd", "abcd"),  # NUL, DEL, a C1 code
        ("abc\u202edcba", "abcdcba"),  # a bidi override
        ("données  \u00a0 Größe 学习率", "données Größe 学习率"),  # any script stays
    ],
)
def test_one_line(text: str, expected: str) -> None:
    assert printable(text) == expected


def test_keep_lines_for_logs() -> None:
    assert printable("step 1\r\nstep 2\rstep 3\n\x1b[1mdone\x1b[0m\tok", keep_lines=True) == (
        "step 1\nstep 2\nstep 3\ndone\tok"
    )
