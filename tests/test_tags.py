"""Tags as a user meets them: fixing a failed baseline, results per tag, the default tag.

Every test drives the real ``ratchet`` command on a real git repository (the
``cat value.txt`` study of conftest).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FAST_TOML, git, ratchet

from ratchet.run.workspace import free_tag

# check.sh is the evaluation: it prints the metric from the value the run phase printed.
EVALUATE = '[evaluate]\ncommand = "sh check.sh"\nbudget = 5\ninputs = ["value.txt"]\n\n'
EVALUATED = FAST_TOML.replace("[metric]", EVALUATE + "[metric]")


def _run(root: Path, *args: str, replay: list[dict] | None = None):  # type: ignore[no-untyped-def]
    """``ratchet run`` with the given proposals (none: the baseline only)."""
    path = root.parent / "proposals.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in replay or []))
    return ratchet("run", str(root), "--replay", str(path), *args)


def _score(value: int) -> dict:
    return {"description": f"score {value}", "edits": {"value.txt": f"score: {value}\n"}}


def _commit(root: Path, name: str, text: str) -> None:
    (root / name).write_text(text)
    git(root, "commit", "-qam", f"edit {name}")


@pytest.fixture
def two_tags(fast_study: Path) -> Path:
    """Tag main: a baseline and two experiments; then tag other: its baseline only."""
    assert _run(fast_study, replay=[_score(3), _score(4)]).returncode == 0
    assert _run(fast_study, "--tag", "other").returncode == 0
    return fast_study


# --- a failed baseline, fixed on the same tag ---------------------------------------------


def test_a_baseline_failed_in_the_evaluation_is_fixed_on_the_same_tag(fast_study: Path) -> None:
    root = fast_study
    _commit(root, "ratchet.toml", EVALUATED)
    failed = _run(root)  # check.sh prints nothing: the evaluate phase finds no metric
    assert failed.returncode == 1 and "evaluate phase" in failed.stderr
    _commit(root, "check.sh", "cat value.txt\n")
    _commit(root, "ratchet.toml", EVALUATED.replace("budget = 10", "budget = 12"))
    fixed = _run(root)
    assert fixed.returncode == 0, fixed.stderr
    rows = json.loads(ratchet("log", str(root), "--json").stdout)
    assert [(r["status"], r["metric"]) for r in rows] == [("crash", None), ("baseline", 5.0)]


def test_after_a_baseline_a_change_to_what_is_measured_names_the_key_and_a_new_tag(
    fast_study: Path,
) -> None:
    root = fast_study
    assert _run(root).returncode == 0
    _commit(root, "ratchet.toml", FAST_TOML.replace("budget = 10", "budget = 20"))
    refused = _run(root)
    assert refused.returncode == 2
    assert "[run] budget changed from 10 to 20" in refused.stderr
    assert "--tag main-2" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert _run(root, "--tag", "main-2").returncode == 0
    _commit(root, "check.sh", "echo changed\n")
    again = _run(root, "--tag", "main-2")
    assert again.returncode == 2 and "protected file check.sh changed" in again.stderr
    assert "--tag main-3" in again.stderr


def test_free_tag_counts_up_past_the_tags_in_use() -> None:
    assert free_tag("main", []) == "main-2"
    assert free_tag("main", ["main-2", "main-3"]) == "main-4"
    assert free_tag("main-2", ["main", "main-2"]) == "main-3"
    assert free_tag("nov26-v9", []) == "nov26-v9-2"
    assert free_tag("x" * 64, []) == "x" * 62 + "-2"  # still a valid tag


# --- results per tag -----------------------------------------------------------------------


def test_each_tag_writes_its_own_results_file_and_the_run_says_where(fast_study: Path) -> None:
    root = fast_study
    first = _run(root, replay=[_score(3), _score(4)])
    assert f"results: {root / '.ratchet' / 'results-main.tsv'}" in first.stdout
    second = _run(root, "--tag", "other")
    assert f"results: {root / '.ratchet' / 'results-other.tsv'}" in second.stdout
    main = (root / ".ratchet" / "results-main.tsv").read_text().splitlines()
    other = (root / ".ratchet" / "results-other.tsv").read_text().splitlines()
    assert [line.split("\t")[3] for line in main[1:]] == ["baseline", "keep", "discard"]
    assert [line.split("\t")[3] for line in other[1:]] == ["baseline"]
    assert not (root / ".ratchet" / "results.tsv").exists()


# --- the default tag of status and report ------------------------------------------------


def test_status_defaults_to_the_most_recent_tag_and_says_so(two_tags: Path) -> None:
    done = ratchet("status", str(two_tags))
    assert done.returncode == 0, done.stderr
    assert "tag other (most recent; --tag to choose)" in done.stdout
    assert "counts    baseline 1\n" in done.stdout  # tag main's keep and discard left out
    main = ratchet("status", str(two_tags), "--tag", "main").stdout
    assert "tag main\n" in main and "baseline 1, discard 1, keep 1" in main


def test_report_defaults_to_the_most_recent_tag_and_says_so(two_tags: Path, tmp_path: Path) -> None:
    done = ratchet("report", str(two_tags), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert "tag other (most recent; --tag to choose)" in done.stdout
    report = (tmp_path / "r" / "report.md").read_text()
    assert "tag other" in report.splitlines()[0]
    assert "| best score | 5 (experiment 4," in report  # not main's 3 (experiment 2)
    main = ratchet("report", str(two_tags), "--tag", "main", "--out", str(tmp_path / "m"))
    assert main.returncode == 0 and "tag main\n" in main.stdout
    assert "| best score | 3 (experiment 2," in (tmp_path / "m" / "report.md").read_text()


@pytest.mark.parametrize("command", ["status", "report", "log"])
def test_a_misspelled_tag_is_an_error_naming_the_known_tags(two_tags: Path, command: str) -> None:
    done = ratchet(command, str(two_tags), "--tag", "mian")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: no tag 'mian' in {two_tags} — known tags: main, other (pass one with --tag)"
    )
    assert not (two_tags / ".ratchet" / "progress.png").exists()
