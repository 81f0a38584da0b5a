"""SIGKILL of `ratchet run` at each step of an experiment, then a rerun of the same tag.

Proposals: three (keep), four (discard), two (keep), one (keep). Each test
kills Ratchet while it handles the third proposal, "two", reruns the same
tag with the same replay file, and checks that the ledger, the branch, the
refs and results.tsv tell one consistent story in which every proposal
appears exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import git, ratchet

from .conftest import (
    PROPOSALS,
    STATUSES,
    FaultStudy,
    alive,
    assert_consistent,
    inject,
    log_rows,
    processes_with,
    read_tsv,
    wait_no_processes,
)

DESCRIPTIONS = ["baseline", *(p["description"] for p in PROPOSALS)]


def _replay(tmp_path: Path, proposals: list[dict]) -> Path:
    path = tmp_path / "proposals.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    return path


def _rerun(study: FaultStudy, replay: Path) -> subprocess.CompletedProcess:
    done = ratchet(*study.replay_args(replay))
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _killed(study: FaultStudy, tmp_path: Path, step: str, n: int) -> Path:
    """Run until the fault; check Ratchet really died of SIGKILL and left nothing running."""
    replay = _replay(tmp_path, PROPOSALS)
    done = inject(step, n, study.replay_args(replay))
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    assert wait_no_processes(study.marker, str(study.root)) == []
    return replay


@pytest.mark.parametrize(("step", "n"), [("proposing", 3), ("after-commit", 3)])
def test_killed_before_the_row_is_written_the_proposal_runs_once_on_resume(
    fault_study: FaultStudy, tmp_path: Path, step: str, n: int
) -> None:
    """No row yet, so nothing to mark: the rerun proposes "two" again, and records it once."""
    replay = _killed(fault_study, tmp_path, step, n)
    assert [r["description"] for r in log_rows(fault_study.root)] == DESCRIPTIONS[:3]

    _rerun(fault_study, replay)
    assert_consistent(fault_study, DESCRIPTIONS, STATUSES)


def test_killed_between_the_outcome_and_the_branch_move(
    fault_study: FaultStudy, tmp_path: Path
) -> None:
    """The ledger says keep, the branch lags behind: the rerun moves the branch, not the ledger."""
    replay = _killed(fault_study, tmp_path, "after-finish", 4)  # baseline, three, four, two
    rows = log_rows(fault_study.root)
    assert [r["status"] for r in rows] == STATUSES[:4]
    branch = git(fault_study.root, "rev-parse", "refs/heads/ratchet/main")
    assert branch == rows[1]["commit"], "the branch moved before the kill: nothing was tested"

    done = _rerun(fault_study, replay)
    assert f"moved ratchet/main to the ledger's incumbent {rows[3]['commit'][:7]}" in done.stdout
    assert_consistent(fault_study, DESCRIPTIONS, STATUSES)


def test_killed_while_exporting_results_tsv(fault_study: FaultStudy, tmp_path: Path) -> None:
    """results.tsv is never half written: the old copy stays until the rerun exports again."""
    replay = _killed(fault_study, tmp_path, "exporting", 4)  # exports after each outcome
    rows = log_rows(fault_study.root)
    assert [r["status"] for r in rows] == STATUSES[:4]
    assert [t["description"] for t in read_tsv(fault_study.root)] == DESCRIPTIONS[:3]

    _rerun(fault_study, replay)
    assert_consistent(fault_study, DESCRIPTIONS, STATUSES)


def test_killed_while_running_leaves_no_process_and_resumes(
    fault_study: FaultStudy, tmp_path: Path
) -> None:
    """The running candidate and the daemon it started die with Ratchet; the row is interrupted."""
    started, daemon = tmp_path / "started", tmp_path / "daemon.pid"
    slow = f"setsid sh -c 'echo $$ > {daemon}; exec sleep 300' &\necho $$ > {started}\nsleep 300\n"
    proposals = [*PROPOSALS[:2], {"description": "slow", "edits": {"run.sh": slow}}, PROPOSALS[3]]
    replay = _replay(tmp_path, proposals)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ratchet", *fault_study.replay_args(replay)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (started.exists() and daemon.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with(fault_study.marker), "the slow candidate never started"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    pids = [int(started.read_text()), int(daemon.read_text())]
    assert wait_no_processes(fault_study.marker, str(fault_study.root)) == []
    assert not [pid for pid in pids if alive(pid)], "the candidate or its daemon outlived ratchet"
    assert [r["status"] for r in log_rows(fault_study.root)] == [*STATUSES[:3], "running"]

    done = _rerun(fault_study, replay)
    assert "experiment 4 was interrupted" in done.stdout
    assert_consistent(
        fault_study,
        ["baseline", "three", "four", "slow", "one"],
        ["baseline", "keep", "discard", "interrupted", "keep"],
    )


@pytest.mark.parametrize(("step", "n"), [("after-commit", 3), ("after-finish", 3)])
def test_killed_with_two_workers_in_flight_resumes_consistently(
    fault_study: FaultStudy, tmp_path: Path, step: str, n: int
) -> None:
    """With two workers the order of outcomes varies; what must hold does not."""
    replay = _replay(tmp_path, PROPOSALS)
    done = inject(step, n, fault_study.replay_args(replay, "--workers", "2"))
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    assert wait_no_processes(fault_study.marker, str(fault_study.root)) == []

    again = ratchet(*fault_study.replay_args(replay, "--workers", "2"))
    assert again.returncode == 0, again.stdout + again.stderr
    rows = log_rows(fault_study.root)
    statuses = [r["status"] for r in rows]
    assert "running" not in statuses and statuses[0] == "baseline"
    proposed = [r["description"] for r in rows[1:] if not r["description"].startswith("rebase")]
    assert sorted(proposed) == sorted(p["description"] for p in PROPOSALS)  # each exactly once
    kept = [r for r in rows if r["status"] in ("baseline", "keep")]
    assert git(fault_study.root, "rev-parse", "refs/heads/ratchet/main") == kept[-1]["commit"]
    for r in rows:
        if r["commit"]:
            assert git(fault_study.root, "rev-parse", f"refs/ratchet/main/exp/{r['id']}") == r[
                "commit"
            ]
    tsv = read_tsv(fault_study.root)
    assert [t["status"] for t in tsv] == statuses
    assert wait_no_processes(fault_study.marker, str(fault_study.root)) == []
    assert git(fault_study.root, "rev-parse", "HEAD") == fault_study.head
