"""Editable regions: the EVOLVE-BLOCK markers of OpenEvolve and ShinkaEvolve."""

from __future__ import annotations

import pytest

from ratchet.errors import ConfigError
from ratchet.proposers.regions import (
    allowed_lines,
    check_edit,
    find_regions,
    is_region_limited,
    split_pattern,
)

PROGRAM = """\
import numpy as np

# EVOLVE-BLOCK-START
def construct():
    return np.zeros(26)
# EVOLVE-BLOCK-END


def score(x):
    return x.sum()
"""
PATTERNS = ["initial_program.py:EVOLVE-BLOCK", "helper.py"]


def test_patterns_split_into_a_glob_and_a_flag() -> None:
    assert split_pattern("initial_program.py:EVOLVE-BLOCK") == ("initial_program.py", True)
    assert split_pattern("src/*.py") == ("src/*.py", False)
    assert is_region_limited("initial_program.py", PATTERNS)
    assert not is_region_limited("helper.py", PATTERNS)
    assert is_region_limited("pkg/a.py", ["pkg/*.py:EVOLVE-BLOCK"])


def test_regions_are_the_lines_between_the_markers() -> None:
    assert find_regions("p.py", PROGRAM) == [(4, 5)]
    two = "# EVOLVE-BLOCK-START\na\n# EVOLVE-BLOCK-END\nb\n"
    two += "  // EVOLVE-BLOCK-START\n  // EVOLVE-BLOCK-END\n"
    assert find_regions("p.py", two) == [(2, 2), (6, 5)]
    assert allowed_lines("initial_program.py", PROGRAM, PATTERNS) == {4, 5}
    assert allowed_lines("helper.py", PROGRAM, PATTERNS) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# EVOLVE-BLOCK-START\nx\n", "line 1: EVOLVE-BLOCK-START without an EVOLVE-BLOCK-END"),
        ("x\n# EVOLVE-BLOCK-END\n", "line 2: EVOLVE-BLOCK-END without an EVOLVE-BLOCK-START"),
        ("# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START\n", "line 2: a second EVOLVE-BLOCK-START"),
    ],
)
def test_unbalanced_markers_name_the_file_and_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"p.py, {problem}.* needs its own"):
        find_regions("p.py", text)


def test_an_edit_inside_the_region_passes() -> None:
    new = PROGRAM.replace("    return np.zeros(26)", "    r = np.ones(26)\n    return r / 2")
    assert check_edit("initial_program.py", PROGRAM, new, PATTERNS) is None
    assert check_edit("helper.py", "a\n", "b\n", PATTERNS) is None  # the whole file is editable


def test_an_edit_outside_names_the_first_changed_line() -> None:
    new = PROGRAM.replace("return x.sum()", "return -x.sum()")
    reason = check_edit("initial_program.py", PROGRAM, new, PATTERNS)
    assert reason is not None and "initial_program.py line 10, outside the EVOLVE-BLOCK" in reason
    assert "only lines 4-5" in reason
    grown = PROGRAM.replace("    return np.zeros(26)", "    return np.zeros(27)\n").replace(
        "import numpy as np", "import numpy"
    )
    reason = check_edit("initial_program.py", PROGRAM, grown, PATTERNS)
    assert reason is not None and "line 1," in reason


def test_moving_or_removing_a_marker_is_refused() -> None:
    gone = PROGRAM.replace("# EVOLVE-BLOCK-END\n", "")
    reason = check_edit("initial_program.py", PROGRAM, gone, PATTERNS)
    assert reason is not None and "unbalances the EVOLVE-BLOCK markers" in reason
    both = PROGRAM.replace("# EVOLVE-BLOCK-START\n", "").replace("# EVOLVE-BLOCK-END\n", "")
    reason = check_edit("initial_program.py", PROGRAM, both, PATTERNS)
    assert reason is not None and "adds or removes an EVOLVE-BLOCK region" in reason


def test_a_limited_file_without_markers_may_not_change() -> None:
    reason = check_edit("initial_program.py", "x = 1\n", "x = 2\n", PATTERNS)
    assert reason is not None and "has no # EVOLVE-BLOCK-START" in reason
