"""The commands a user types, run as real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git, ratchet


@pytest.fixture
def ran(fast_study: Path, write_replay) -> Path:
    replay = write_replay(
        [
            {"description": "three", "edits": {"value.txt": "score: 3\n"}},
            {"description": "worse", "edits": {"value.txt": "score: 4\n"}},
            {"description": "protected", "edits": {"check.sh": "hack\n"}},
        ]
    )
    done = ratchet("run", str(fast_study), "--proposer", "replay", "--replay", str(replay))
    assert done.returncode == 0, done.stderr
    assert "stopped:" in done.stdout
    return fast_study


def test_run_prints_a_summary(fast_study: Path, write_replay) -> None:
    replay = write_replay([{"description": "three", "edits": {"value.txt": "score: 3\n"}}])
    done = ratchet("run", str(fast_study), "--proposer", "replay", "--replay", str(replay))
    assert done.returncode == 0
    assert "score 5 → 3 (-40.00%)" in done.stdout
    assert "results-main.tsv" in done.stdout and "ratchet/main" in done.stdout
    assert "#2" in done.stdout and "keep" in done.stdout
    assert "tag main: 1 experiment this run, 1 kept in all;" in done.stdout


def test_log_json(ran: Path) -> None:
    done = ratchet("log", str(ran), "--json")
    rows = json.loads(done.stdout)
    assert [r["status"] for r in rows] == ["baseline", "keep", "discard", "rejected"]
    for key in ("id", "status", "metric", "commit", "parent", "description", "duration_s"):
        assert all(key in r for r in rows)
    assert rows[0]["parent"] is None and rows[1]["parent"] == rows[0]["commit"]
    assert rows[3]["metric"] is None and rows[3]["commit"] is None
    assert rows[2]["metric"] == 4.0


def test_log_table_and_status(ran: Path) -> None:
    table = ratchet("log", str(ran)).stdout
    assert "three" in table and "discard" in table and "is protected" in table
    status = ratchet("status", str(ran)).stdout
    assert "incumbent 3 (#2, -40.00%) three" in status
    assert "baseline 1" in status and "keep 1" in status and "rejected 1" in status


def test_show_diff_and_log(ran: Path) -> None:
    done = ratchet("show", "2", str(ran), "--diff", "--log")
    assert done.returncode == 0
    assert "-score: 5" in done.stdout and "+score: 3" in done.stdout
    assert "--- run.log" in done.stdout and "score: 3" in done.stdout
    missing = ratchet("show", "99", str(ran))
    assert missing.returncode == 2 and "no experiment #99" in missing.stderr


def test_replay_reruns_exact_code(ran: Path) -> None:
    done = ratchet("replay", "3", str(ran))
    assert done.returncode == 0, done.stderr
    assert "score=4" in done.stdout and "recorded discard 4" in done.stdout
    assert git(ran, "status", "--porcelain") == ""


def test_report_writes_png_and_markdown(ran: Path, tmp_path: Path) -> None:
    done = ratchet("report", str(ran), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    png = tmp_path / "r" / "progress.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| baseline score | 5 (experiment 1," in report
    assert "| best score | 3 (experiment 2," in report
    assert "| improvement | 40.00 % vs baseline |" in report
    assert "| keep rate | 1 of 3 after the baseline (33.3 %) |" in report


def test_doctor(ran: Path) -> None:
    done = ratchet("doctor", str(ran))
    assert done.returncode == 0, done.stdout
    assert "ledger" in done.stdout and "4 experiments" in done.stdout


def test_doctor_reports_damaged_ledger(ran: Path) -> None:
    ledger = ran / ".ratchet" / "ledger.sqlite"
    for extra in ("-wal", "-shm"):
        Path(str(ledger) + extra).unlink(missing_ok=True)
    ledger.write_bytes(b"not a database" * 100)
    done = ratchet("doctor", str(ran))
    assert done.returncode == 1 and "BAD" in done.stdout and "ledger" in done.stdout
    run = ratchet("run", str(ran), "--max-experiments", "0", "--proposer", "mutate")
    assert run.returncode == 2 and "ledger" in run.stderr
    assert ledger.read_bytes() == b"not a database" * 100  # never overwritten


def test_init_blank_in_a_new_directory(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    done = ratchet("init", str(target), "--template", "blank")
    assert done.returncode == 0, done.stderr
    assert (target / "ratchet.toml").is_file() and (target / "train.py").is_file()
    assert git(target, "status", "--porcelain") == ""  # initialised and committed
    again = ratchet("init", str(target), "--template", "blank")
    assert again.returncode == 2 and "already exists" in again.stderr
    run = ratchet("run", str(target), "--max-experiments", "3")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = json.loads(ratchet("log", str(target), "--json").stdout)
    assert rows[0]["status"] == "baseline" and len(rows) == 4


def test_init_of_an_llm_study_says_how_to_give_it_a_model(tmp_path: Path) -> None:
    done = ratchet("init", str(tmp_path / "p"), "--template", "prompt")
    assert done.returncode == 0, done.stderr
    assert f"next: ratchet run {tmp_path / 'p'} --model MODEL --max-experiments 10" in done.stdout
    assert "ratchet doctor" in done.stdout and "--proposer llm --model MODEL" in done.stdout
