"""`ratchet try`: the agent-driven workflow on a real checkout, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FAST_TOML, git, make_repo, ratchet


def try_(study: Path, message: str, *args: str) -> tuple[int, str, str]:
    """`ratchet try DIR -m MESSAGE`; returns (exit code, stdout, stderr)."""
    done = ratchet("try", str(study), "-m", message, *args)
    return done.returncode, done.stdout, done.stderr


def rows(study: Path) -> list[tuple[str, float | None, str]]:
    done = ratchet("log", str(study), "--json")
    assert done.returncode == 0, done.stderr
    return [(r["status"], r["metric"], r["description"]) for r in json.loads(done.stdout)]


def test_a_better_change_is_committed_to_the_current_branch(fast_study: Path) -> None:
    head = git(fast_study, "rev-parse", "HEAD")
    (fast_study / "value.txt").write_text("score: 3\n")
    code, out, err = try_(fast_study, "lower the score to 3")
    assert (code, out) == (0, "keep score=3 (best 3)\n"), err
    assert git(fast_study, "log", "-1", "--format=%s") == "lower the score to 3"
    assert git(fast_study, "rev-parse", "HEAD^") == head
    assert git(fast_study, "branch", "--show-current") == "main"
    assert git(fast_study, "status", "--porcelain") == ""
    assert (fast_study / "value.txt").read_text() == "score: 3\n"
    assert rows(fast_study) == [
        ("baseline", 5.0, "baseline"),
        ("keep", 3.0, "lower the score to 3"),
    ]
    exp = json.loads(ratchet("log", str(fast_study), "--json").stdout)[-1]
    assert exp["commit"] == git(fast_study, "rev-parse", "HEAD")
    assert (exp["proposer"], exp["worker"], exp["budget_s"]) == ("try", "w0", 10.0)


def test_a_worse_change_is_restored_to_head(fast_study: Path) -> None:
    (fast_study / "value.txt").write_text("score: 3\n")
    assert try_(fast_study, "lower")[1] == "keep score=3 (best 3)\n"
    head = git(fast_study, "rev-parse", "HEAD")
    (fast_study / "value.txt").write_text("score: 4\n")
    git(fast_study, "add", "value.txt")  # staged or not, the file goes back to HEAD
    code, out, err = try_(fast_study, "raise it again")
    assert (code, out) == (0, "discard score=4 (best 3)\n"), err
    assert (fast_study / "value.txt").read_text() == "score: 3\n"
    assert git(fast_study, "rev-parse", "HEAD") == head
    assert git(fast_study, "status", "--porcelain") == ""
    discarded = json.loads(ratchet("log", str(fast_study), "--json").stdout)[-1]
    shown = ratchet("show", str(discarded["id"]), str(fast_study), "--diff").stdout
    assert "+score: 4" in shown  # the discarded change is still on record


def test_a_study_inside_a_larger_repository(tmp_path: Path) -> None:
    files = {"ratchet.toml": FAST_TOML, "program.md": "Lower.\n", "value.txt": "score: 5\n"}
    repo = make_repo(tmp_path / "repo", {f"lab/{k}": v for k, v in files.items()} | {"README": "x"})
    study = repo / "lab"
    (study / "check.sh").write_text("echo protected\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "add check")
    (study / "value.txt").write_text("score: 2\n")
    assert try_(study, "two") == (0, "keep score=2 (best 2)\n", "")
    assert git(repo, "show", "HEAD:lab/value.txt") == "score: 2"
    (study / "value.txt").write_text("score: 7\n")
    assert try_(study, "seven") == (0, "discard score=7 (best 2)\n", "")
    assert (study / "value.txt").read_text() == "score: 2\n"
    assert git(repo, "status", "--porcelain") == ""


def test_a_crash_is_restored_and_said_so(fast_study: Path) -> None:
    (fast_study / "value.txt").write_text("no number here\n")
    code, out, err = try_(fast_study, "break it")
    assert code == 0, err
    assert out.startswith("crash score=- (best 5) — crash: ")
    assert out.rstrip().endswith("--log`)") and out.count("\n") == 1
    assert (fast_study / "value.txt").read_text() == "score: 5\n"
    assert [r[0] for r in rows(fast_study)] == ["baseline", "crash"]


def test_an_edited_protected_file_is_refused_and_nothing_runs(fast_study: Path) -> None:
    head = git(fast_study, "rev-parse", "HEAD")
    (fast_study / "value.txt").write_text("score: 0\n")
    (fast_study / "check.sh").write_text("echo hacked\n")
    code, out, err = try_(fast_study, "cheat")
    assert (code, out) == (2, "")
    assert "check.sh is protected and differs from HEAD" in err
    assert len(err.strip().splitlines()) == 1
    assert (fast_study / "value.txt").read_text() == "score: 0\n"  # the user's edit is theirs
    assert git(fast_study, "rev-parse", "HEAD") == head
    assert not (fast_study / ".ratchet" / "ledger.sqlite").exists()


def test_a_protected_file_committed_after_the_pins_is_refused(fast_study: Path) -> None:
    (fast_study / "value.txt").write_text("score: 3\n")
    assert try_(fast_study, "lower")[0] == 0
    (fast_study / "check.sh").write_text("echo hacked\n")
    git(fast_study, "commit", "-qam", "change the check")
    (fast_study / "value.txt").write_text("score: 1\n")
    code, _out, err = try_(fast_study, "lower more")
    assert code == 2 and "check.sh" in err
    assert [r[0] for r in rows(fast_study)] == ["baseline", "keep"]


def test_first_try_without_changes_measures_the_baseline_then_refuses(fast_study: Path) -> None:
    assert try_(fast_study, "baseline") == (0, "baseline score=5 (best 5)\n", "")
    code, out, err = try_(fast_study, "again")
    assert (code, out) == (2, "")
    assert "nothing to try" in err and "value.txt" in err


def test_the_agent_proposer_may_not_call_try(
    fast_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATCHET_PROPOSER", "agent")
    (fast_study / "value.txt").write_text("score: 3\n")
    code, _out, err = try_(fast_study, "sneaky")
    assert code == 2 and "not for the agent proposer" in err
    assert (fast_study / "value.txt").read_text() == "score: 3\n"


@pytest.mark.parametrize("template", ["sine", "blank"])
def test_init_writes_agent_instructions(tmp_path: Path, template: str) -> None:
    target = tmp_path / "study"
    done = ratchet("init", str(target), "--template", template)
    assert done.returncode == 0, done.stderr
    text = (target / "AGENTS.md").read_text()
    assert 'ratchet try -m "' in text and "Never stop" in text
    assert "Editable, yours to change: `train.py`" in text
    assert "`ratchet.toml`" in text and "`program.md`" in text
    assert "AGENTS.md" in git(target, "ls-files")
