"""The one edit parser: every format a model may answer in ends as full new file texts."""

from __future__ import annotations

import pytest

from ratchet.proposers.edits import EditError, parse_answer, resolve_path

TRAIN = """\
import math

LR = 0.1
STEPS = 100


def train():
    for step in range(STEPS):
        loss = step * LR
    return loss
"""
FILES = {"train.py": TRAIN, "model/net.py": "WIDTH = 8\nDEPTH = 2\n"}


def sr(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_search_replace_block_with_description_and_rationale() -> None:
    answer = "Raise the learning rate\n\nIt learns too slowly.\n\n" + sr(
        "train.py", "LR = 0.1", "LR = 0.3"
    )
    parsed = parse_answer(answer, FILES)
    assert parsed.description == "Raise the learning rate"
    assert parsed.rationale == "It learns too slowly."
    assert parsed.edits == {"train.py": TRAIN.replace("LR = 0.1", "LR = 0.3")}
    assert parsed.formats == ("search-replace",)


def test_several_blocks_and_files_in_one_answer_inside_fences() -> None:
    answer = (
        "Wider and longer\n```python\n"
        + sr("train.py", "STEPS = 100", "STEPS = 200")
        + "```\n\n```\n"
        + sr("model/net.py", "WIDTH = 8", "WIDTH = 16")
        + sr("model/net.py", "DEPTH = 2", "DEPTH = 3")
        + "```\nMore capacity needs more steps.\n"
    )
    parsed = parse_answer(answer, FILES)
    assert parsed.edits["train.py"] == TRAIN.replace("STEPS = 100", "STEPS = 200")
    assert parsed.edits["model/net.py"] == "WIDTH = 16\nDEPTH = 3\n"
    assert parsed.description == "Wider and longer"
    assert parsed.rationale == "More capacity needs more steps."


@pytest.mark.parametrize(
    "name",
    ["examples/sine/train.py", "./train.py", "`train.py`", "**train.py**", "File: train.py:"],
)
def test_file_name_with_or_without_the_study_path(name: str) -> None:
    parsed = parse_answer("d\n" + sr(name, "LR = 0.1", "LR = 0.2"), FILES)
    assert list(parsed.edits) == ["train.py"]


def test_name_in_the_fence_info_string() -> None:
    answer = (
        "d\n```python train.py\n<<<<<<< SEARCH\nLR = 0.1\n=======\nLR = 1\n>>>>>>> REPLACE\n```"
    )
    assert "LR = 1\n" in parse_answer(answer, FILES).edits["train.py"]


def test_tolerant_matching_whitespace_blank_lines_and_indentation() -> None:
    search = "\n  for step in range(STEPS):   \n      loss = step * LR\n"
    replace = "\n  for step in range(STEPS):\n      loss = step * LR * 0.5\n"
    parsed = parse_answer("halve the loss\n" + sr("train.py", search, replace), FILES)
    new = parsed.edits["train.py"]
    assert "    for step in range(STEPS):\n        loss = step * LR * 0.5\n" in new
    assert new.endswith("    return loss\n")
    compile(new, "train.py", "exec")


def test_line_numbers_copied_from_the_prompt_are_ignored() -> None:
    parsed = parse_answer("d\n" + sr("train.py", "   3 | LR = 0.1", "   3 | LR = 0.05"), FILES)
    assert "\nLR = 0.05\n" in parsed.edits["train.py"]


def test_the_only_file_needs_no_name_and_later_blocks_reuse_the_last_name() -> None:
    only = {"train.py": TRAIN}
    answer = "d\n<<<<<<< SEARCH\nLR = 0.1\n=======\nLR = 0.2\n>>>>>>> REPLACE\n" + (
        "<<<<<<< SEARCH\nSTEPS = 100\n=======\nSTEPS = 5\n>>>>>>> REPLACE\n"
    )
    new = parse_answer(answer, only).edits["train.py"]
    assert "LR = 0.2" in new and "STEPS = 5" in new


def test_unified_diff_applied_by_content() -> None:
    diff = (
        "Fewer steps\n```diff\n--- a/examples/sine/train.py\n+++ b/examples/sine/train.py\n"
        "@@ -3,2 +3,2 @@\n LR = 0.1\n-STEPS = 100\n+STEPS = 50\n```\n"
    )
    parsed = parse_answer(diff, FILES)
    assert parsed.edits == {"train.py": TRAIN.replace("STEPS = 100", "STEPS = 50")}
    assert parsed.formats == ("diff",) and parsed.description == "Fewer steps"


def test_diff_line_number_breaks_a_tie() -> None:
    text = "x = 1\ny = 2\nx = 1\ny = 2\n"
    diff = "d\n--- a/a.py\n+++ b/a.py\n@@ -3,2 +3,2 @@\n x = 1\n-y = 2\n+y = 3\n"
    assert parse_answer(diff, {"a.py": text}).edits["a.py"] == "x = 1\ny = 2\nx = 1\ny = 3\n"


def test_diff_creating_a_new_file() -> None:
    diff = "add a helper\n--- /dev/null\n+++ b/util.py\n@@ -0,0 +1,2 @@\n+A = 1\n+B = 2\n"
    assert parse_answer(diff, FILES).edits == {"util.py": "A = 1\nB = 2\n"}


def test_whole_file_after_its_name() -> None:
    new = TRAIN.replace("LR = 0.1", "LR = 0.01")
    answer = f"Lower LR\n\ntrain.py\n```python\n{new}```\n"
    parsed = parse_answer(answer, FILES)
    assert parsed.edits == {"train.py": new}
    assert parsed.formats == ("whole-file",) and parsed.description == "Lower LR"


def test_whole_file_for_a_protected_path_is_passed_on_for_verify_to_refuse() -> None:
    parsed = parse_answer("cheat\nevaluate.py\n```\nprint('mse: 0')\n```\n", FILES)
    assert parsed.edits == {"evaluate.py": "print('mse: 0')\n"}


@pytest.mark.parametrize(
    ("head", "description", "rationale"),
    [
        (  # ShinkaEvolve's shape: NAME, DESCRIPTION and DIFF each in their own tag lines
            "<NAME>\nfaster_lr\n</NAME>\n\n<DESCRIPTION>\nRaise the learning rate.\n"
            "It learns too slowly.\n</DESCRIPTION>\n\n<DIFF>\n",
            "Raise the learning rate.",
            "faster_lr\nIt learns too slowly.",
        ),
        ("<NAME>faster_lr</NAME>\n<DIFF>\n", "faster_lr", ""),
        ("<DIFF>\nRaise the learning rate\n", "Raise the learning rate", ""),
    ],
)
def test_a_tagged_answer_is_described_by_its_tags_not_by_a_marker(
    head: str, description: str, rationale: str
) -> None:
    answer = head + sr("train.py", "LR = 0.1", "LR = 0.3") + "</DIFF>\n"
    parsed = parse_answer(answer, FILES)
    assert (parsed.description, parsed.rationale) == (description, rationale)
    assert parsed.edits == {"train.py": TRAIN.replace("LR = 0.1", "LR = 0.3")}


def test_missing_description_is_derived_from_the_files() -> None:
    assert parse_answer(sr("train.py", "LR = 0.1", "LR = 2"), FILES).description == (
        "edit train.py"
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("just prose, no edit", "the answer contains no edit"),
        ("d\n```python\nLR = 3\n```", "the code block at line 2 names no file"),
        (
            "d\ntrain.py\n<<<<<<< SEARCH\nLR = 0.1\n>>>>>>> REPLACE\n",
            "the SEARCH block at line 3 (train.py) has no ======= line",
        ),
        (
            "d\ntrain.py\n<<<<<<< SEARCH\nLR = 0.1\n=======\nLR = 2\n",
            "is not closed by a >>>>>>> REPLACE line",
        ),
        ("d\n" + sr("train.py", "LR = 0.7", "LR = 2"), "the closest lines are 3-3:\nLR = 0.1"),
        ("d\n" + sr("train.py", "while True:", "pass"), "no line of train.py resembles"),
        (
            "d\n" + sr("evaluate.py", "N = 201", "N = 2"),
            "edits evaluate.py, which is not an editable file here (editable: model/net.py,"
            " train.py)",
        ),
        (
            "d\n<<<<<<< SEARCH\nLR = 0.1\n=======\nLR = 2\n>>>>>>> REPLACE\n",
            "names no file: put the file's path alone on the line before <<<<<<< SEARCH",
        ),
        ("d\n" + sr("train.py", "", "X = 1"), "has an empty SEARCH part, but train.py is not"),
        ("d\n--- a/train.py\n+++ /dev/null\n", "deleting files is not supported"),
    ],
)
def test_unusable_answers_say_exactly_why(answer: str, reason: str) -> None:
    with pytest.raises(EditError) as caught:
        parse_answer(answer, FILES)
    assert reason in str(caught.value)


def test_ambiguous_search_is_refused_with_the_places() -> None:
    text = "a = 1\nb = 2\na = 1\n"
    with pytest.raises(EditError, match=r"matches 2 places in x.py \(lines 1, 3\)"):
        parse_answer("d\n" + sr("x.py", "a = 1", "a = 5"), {"x.py": text})


def test_resolve_path_prefers_the_longest_known_suffix() -> None:
    files = {"net.py": "", "model/net.py": ""}
    assert resolve_path("src/model/net.py", files) == "model/net.py"
    assert resolve_path("other/thing.py", files) == "other/thing.py"
