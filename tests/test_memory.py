"""Memory as pure functions: normalized patches, dedupe, lessons and the journal."""

from __future__ import annotations

from pathlib import Path

from ratchet.decide.dedupe import (
    PATCH_CAP,
    find_duplicate,
    normalized_patch,
    patch_meta,
    similarity,
)
from ratchet.models import Experiment
from ratchet.store.journal import (
    CONFIRMED,
    journal_markdown,
    lesson,
    render_journal,
    write_journal,
)

TRAIN = "import math\n\nLR = 0.03\nSTEPS = 100\n\n\ndef f(x):\n    return x * LR\n"


def _exp(exp_id: int, status: str, **kw: object) -> Experiment:
    defaults: dict = {"tag": "main", "parent": "p0", "commit": f"c{exp_id}"}
    return Experiment(id=exp_id, status=status, **{**defaults, **kw})  # type: ignore[arg-type]


def _tried(exp_id: int, status: str, files: dict, edits: dict, **kw: object) -> Experiment:
    return _exp(exp_id, status, meta=patch_meta(normalized_patch(files, edits)), **kw)


# --- normalized patches ------------------------------------------------------------------


def test_patch_holds_only_the_changed_lines() -> None:
    patch = normalized_patch({"train.py": TRAIN}, {"train.py": TRAIN.replace("0.03", "0.045")})
    assert patch == "--- train.py\n-LR=0.03\n+LR=0.045"


def test_formatting_differences_give_the_same_patch() -> None:
    tidy = normalized_patch({"train.py": TRAIN}, {"train.py": TRAIN.replace("0.03", "0.045")})
    messy = TRAIN.replace("LR = 0.03", "LR   =  0.045   ").replace("\n\n", "\n\n\n\n")
    assert normalized_patch({"train.py": TRAIN}, {"train.py": messy}) == tidy


def test_indentation_is_meaning_not_formatting() -> None:
    moved = TRAIN.replace("    return x * LR", "return x * LR")
    assert "+return x*LR" in normalized_patch({"train.py": TRAIN}, {"train.py": moved})


def test_whitespace_only_edit_is_an_empty_patch_and_never_a_duplicate() -> None:
    patch = normalized_patch({"train.py": TRAIN}, {"train.py": TRAIN + "\n\n   \n"})
    assert patch == ""
    earlier = [_exp(2, "discard", meta={"patch": "x", "patch_sha": "y"})]
    assert find_duplicate(patch, earlier) is None


def test_patch_meta_caps_the_text_but_hashes_all_of_it() -> None:
    big = "\n".join(f"+line {i}" for i in range(10_000))
    meta = patch_meta(big)
    assert len(meta["patch"]) == PATCH_CAP
    other = patch_meta(big + "\n+one more")
    assert other["patch"] == meta["patch"] and other["patch_sha"] != meta["patch_sha"]


# --- dedupe ----------------------------------------------------------------------------


def test_same_change_is_found_with_the_earliest_experiment() -> None:
    files, edits = {"train.py": TRAIN}, {"train.py": TRAIN.replace("0.03", "0.045")}
    history = [
        _exp(1, "baseline"),
        _tried(2, "discard", files, edits),
        _tried(3, "rejected", files, edits),
    ]
    found = find_duplicate(normalized_patch(files, edits), history)
    assert found is not None and found.id == 2


def test_another_value_is_a_new_idea() -> None:
    files = {"train.py": TRAIN}
    history = [_tried(2, "discard", files, {"train.py": TRAIN.replace("0.03", "0.045")})]
    other = normalized_patch(files, {"train.py": TRAIN.replace("0.03", "0.05")})
    assert find_duplicate(other, history) is None


def test_near_identical_long_change_is_a_duplicate() -> None:
    body = "".join(f"    h{i} = layer{i}(h{i - 1}) * scale + bias{i}\n" for i in range(1, 60))
    files = {"train.py": TRAIN}
    first = {"train.py": TRAIN + "def net(h0):\n" + body}
    second = {"train.py": TRAIN + "def net(h0):\n" + body.replace("bias7", "bias_7")}
    history = [_tried(4, "crash", files, first)]
    found = find_duplicate(normalized_patch(files, second), history)
    assert found is not None and found.id == 4


def test_another_value_in_a_long_line_is_still_a_new_idea() -> None:
    line = "net = Net(layers=4, hidden=128, heads=8, drop=0.1, lr=0.03, wd=0.01, warmup=200,"
    line += " decay=0.99, clip=1.0, batch=64, steps=5000, eval_every=100, seed=1)\n"
    files = {"train.py": TRAIN + line}
    first = {"train.py": TRAIN + line.replace("lr=0.03", "lr=0.045")}
    second = {"train.py": TRAIN + line.replace("lr=0.03", "lr=0.05")}
    history = [_tried(2, "discard", files, first)]
    patch = normalized_patch(files, second)
    assert similarity(patch, history[0].meta["patch"]) >= 0.9  # the text is nearly the same
    assert find_duplicate(patch, history) is None  # but the value is the experiment


def test_remeasures_and_interrupted_rows_are_not_earlier_tries() -> None:
    files, edits = {"train.py": TRAIN}, {"train.py": TRAIN.replace("100", "200")}
    history = [_tried(2, "interrupted", files, edits), _tried(3, "remeasure", files, edits)]
    assert find_duplicate(normalized_patch(files, edits), history) is None


# --- lessons and the journal -----------------------------------------------------------


def test_lessons_say_what_happened_against_the_parent() -> None:
    worse = _exp(2, "discard", description="LR 0.03 → 0.045", metric=1.02)
    better = _exp(3, "keep", description="LR 0.03 → 0.02", metric=0.97)
    crash = _exp(4, "crash", description="bigger model", reason="run phase: OOM\nTraceback")
    timeout = _exp(5, "timeout", description="more steps", reason="ran past its 10 s budget")
    kw = {"metric_name": "val_bpb", "goal": "minimize"}
    assert lesson(worse, 1.0, **kw) == "LR 0.03 → 0.045 made val_bpb worse by 0.02 (discard)"
    assert lesson(better, 1.0, **kw) == "LR 0.03 → 0.02 made val_bpb better by 0.03 (keep)"
    assert lesson(crash, 1.0, **kw) == "bigger model crashed: run phase: OOM"
    assert lesson(timeout, 1.0, **kw) == "more steps timed out: ran past its 10 s budget"
    assert "better" in lesson(worse, 1.0, metric_name="acc", goal="maximize")


def test_an_unconfirmed_keep_says_so() -> None:
    kept = _exp(3, "keep", description="x", metric=0.5, extras={CONFIRMED: 0.0})
    assert lesson(kept, 1.0, metric_name="m", goal="minimize").endswith("but did not confirm")


def _history(n_failures: int) -> list[Experiment]:
    rows = [_exp(1, "baseline", parent=None, metric=5.0, description="baseline")]
    rows.append(_exp(2, "keep", parent="c1", metric=4.0, description="the good idea"))
    for i in range(3, 3 + n_failures):
        rows.append(_exp(i, "discard", parent="c2", metric=4.5, description=f"failed idea {i}"))
    failed = _exp(99, "rejected", parent="c2", description="(no proposal)", reason="proposal: x")
    rows.append(failed)
    return rows


def test_render_journal_puts_keeps_first_then_recent_failures() -> None:
    text = render_journal(_history(3), metric_name="score", goal="minimize")
    lines = text.splitlines()
    assert lines[0] == "Kept, newest first:"
    assert lines[1] == "- #2 the good idea made score better by 1 (keep)"
    assert lines[2] == "- #1 baseline: score 5"
    assert lines[3] == "Recent, newest first:" and lines[4].startswith("- #5 failed idea 5")
    assert "(no proposal)" not in text  # proposer failures are shown on their own


def test_render_journal_is_bounded_and_says_what_it_left_out() -> None:
    text = render_journal(_history(200), metric_name="score", goal="minimize", limit_chars=1000)
    assert len(text) <= 1000
    assert "#2 the good idea" in text  # the keep survives the cut
    assert "#202 failed idea 202" in text  # so does the newest failure
    assert text.splitlines()[-1].endswith("more in .ratchet/journal.md)")


def test_write_journal_is_full_markdown_for_people(tmp_path: Path) -> None:
    history = _history(2)
    path = tmp_path / "state" / "journal.md"
    write_journal(path, history, metric_name="score", goal="minimize", title="fast")
    text = path.read_text()
    assert text.startswith("# Journal — fast")
    assert "## #3 discard — failed idea 3" in text
    assert "- outcome: discard, score 4.5, parent 4, +0.5" in text
    assert "- lesson: failed idea 3 made score worse by 0.5 (discard)" in text
    assert text == journal_markdown(history, metric_name="score", goal="minimize", title="fast")
