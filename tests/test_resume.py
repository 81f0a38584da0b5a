"""Killing `ratchet run` (SIGKILL, Ctrl-C) loses nothing and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FAST_TOML, git, make_repo, ratchet

SLOW_TOML = FAST_TOML.replace('command = "cat value.txt"', 'command = "sh value.txt"')


def _slow_study(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "s",
        {
            "ratchet.toml": SLOW_TOML,
            "program.md": "x",
            "value.txt": "echo score: 5\n",
            "check.sh": "x",
        },
    )


def _proposals(tmp_path: Path, pidfile: Path) -> Path:
    # The slow candidate starts a daemon (setsid) and a plain child, both long sleeps.
    slow = (
        f"setsid sh -c 'echo $$ >> {pidfile}; exec sleep 120' &\n"
        f"sh -c 'echo $$ >> {pidfile}; exec sleep 120' &\n"
        "echo started; sleep 120\n"
    )
    lines = [
        {"description": "three", "edits": {"value.txt": "echo score: 3\n"}},
        {"description": "slow", "edits": {"value.txt": slow}},
        {"description": "two", "edits": {"value.txt": "echo score: 2\n"}},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in lines))
    return path


def _start(root: Path, replay: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ratchet",
            "run",
            str(root),
            "--proposer",
            "replay",
            "--replay",
            str(replay),
            "--max-experiments",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(pidfile: Path, count: int, timeout: float = 60) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pidfile.exists():
            pids = [int(x) for x in pidfile.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.05)
    raise AssertionError("the slow experiment never started")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _gone(pids: list[int], timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _log(root: Path) -> list[dict]:
    done = ratchet("log", str(root), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_resume_after_sigkill(tmp_path: Path) -> None:
    root = _slow_study(tmp_path)
    head = git(root, "rev-parse", "HEAD")
    pidfile = tmp_path / "pids"
    replay = _proposals(tmp_path, pidfile)
    proc = _start(root, replay)
    try:
        pids = _wait_for(pidfile, 2)
    finally:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert _gone(pids), "an experiment process outlived ratchet"

    rows = _log(root)
    assert [r["status"] for r in rows] == ["baseline", "keep", "running"]

    done = ratchet(
        "run", str(root), "--proposer", "replay", "--replay", str(replay), "--max-experiments", "1"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "interrupted" in done.stdout
    rows = _log(root)
    assert [r["status"] for r in rows] == ["baseline", "keep", "interrupted", "keep"]
    assert [r["description"] for r in rows] == ["baseline", "three", "slow", "two"]
    assert len({r["id"] for r in rows}) == 4
    assert git(root, "rev-parse", "ratchet/main") == rows[3]["commit"]
    assert git(root, "rev-parse", "HEAD") == head and git(root, "status", "--porcelain") == ""
    tsv = (root / ".ratchet" / "results-main.tsv").read_text().splitlines()
    assert [line.split("\t")[3] for line in tsv[1:]] == ["baseline", "keep", "interrupted", "keep"]


def test_ctrl_c_stops_the_experiment_and_exits_0(tmp_path: Path) -> None:
    root = _slow_study(tmp_path)
    pidfile = tmp_path / "pids"
    proc = _start(root, _proposals(tmp_path, pidfile))
    pids = _wait_for(pidfile, 2)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert time.monotonic() - started < 60  # the candidate would have slept 120 s
    assert _gone(pids)
    assert "Traceback" not in out
    assert [r["status"] for r in _log(root)] == ["baseline", "keep", "interrupted"]


def test_a_second_run_on_the_same_tag_is_refused(tmp_path: Path) -> None:
    root = _slow_study(tmp_path)
    pidfile = tmp_path / "pids"
    replay = _proposals(tmp_path, pidfile)
    proc = _start(root, replay)
    try:
        _wait_for(pidfile, 2)
        done = ratchet("run", str(root), "--proposer", "replay", "--replay", str(replay))
        assert done.returncode == 2
        assert "already being run" in done.stderr
        status = ratchet("status", str(root))
        assert "running   #3 slow" in status.stdout
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.communicate(timeout=30)


def _slow_proposals(tmp_path: Path, pidfile: Path, count: int) -> Path:
    """``count`` candidates that each start a daemon and a child (both long sleeps)."""
    lines = [
        {
            "description": f"slow {k}",
            "edits": {
                "value.txt": (
                    f"setsid sh -c 'echo $$ >> {pidfile}; exec sleep 120' &\n"
                    f"sh -c 'echo $$ >> {pidfile}; exec sleep 121' &\n"
                    f"echo started {k}; sleep 120\n"
                )
            },
        }
        for k in range(count)
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in lines))
    return path


def _start_workers(root: Path, replay: Path, workers: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ratchet", "run", str(root), "--proposer", "replay",
         "--replay", str(replay), "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_resume_after_sigkill_with_three_workers_in_flight(tmp_path: Path) -> None:
    root = _slow_study(tmp_path)
    pidfile = tmp_path / "pids"
    replay = _slow_proposals(tmp_path, pidfile, 5)
    proc = _start_workers(root, replay, 3)
    try:
        pids = _wait_for(pidfile, 6)  # three experiments, two processes each
    finally:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert _gone(pids), "an experiment process outlived ratchet"
    rows = _log(root)
    assert [r["status"] for r in rows] == ["baseline", "running", "running", "running"]

    done = ratchet(
        "run", str(root), "--proposer", "replay", "--replay", str(replay),
        "--workers", "3", "--max-experiments", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _log(root)
    assert [r["status"] for r in rows] == ["baseline", *["interrupted"] * 3]
    assert {r["description"] for r in rows[1:]} == {"slow 0", "slow 1", "slow 2"}
    assert git(root, "rev-parse", "ratchet/main") == rows[0]["commit"]
    for row in rows[1:]:  # each interrupted candidate keeps its code under its ref
        assert git(root, "rev-parse", f"refs/ratchet/main/exp/{row['id']}") == row["commit"]


def test_ctrl_c_with_three_workers_interrupts_each_once(tmp_path: Path) -> None:
    root = _slow_study(tmp_path)
    pidfile = tmp_path / "pids"
    proc = _start_workers(root, _slow_proposals(tmp_path, pidfile, 5), 3)
    pids = _wait_for(pidfile, 6)
    status = ratchet("status", str(root))
    assert "running   3 experiments: #2 slow" in status.stdout, status.stdout
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)  # to ratchet alone, not to its process group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert time.monotonic() - started < 60  # the candidates would have slept 120 s
    assert _gone(pids)
    assert "Traceback" not in out
    assert [r["status"] for r in _log(root)] == ["baseline", *["interrupted"] * 3]
