"""The disk fills up while Ratchet writes the ledger or a log.

A real, small filesystem (tmpfs) is mounted over part of ``.ratchet/``, and
a candidate fills it, as a training run that writes too many checkpoints
would. Ratchet must stop with one sentence that says what happened, keep
everything already recorded, and resume once space is freed.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ratchet

from .conftest import PROPOSALS, FaultStudy, assert_consistent, log_rows, wait_no_processes


def _mount(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
    )
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path(f"/tmp/ratchet-mount-probe-{uuid.uuid4().hex[:8]}")
    try:
        ok = _mount(probe, "64k")
        if ok:
            _umount(probe)
        return ok
    finally:
        probe.rmdir()


pytestmark = pytest.mark.skipif(
    not _can_mount(), reason="needs root and `mount -t tmpfs` to make a small real filesystem"
)


@pytest.fixture
def small_disk() -> Iterator[Callable[[Path, str], None]]:
    """Mount tmpfs filesystems of a given size; unmount them all afterwards."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> None:
        assert _mount(path, size), f"cannot mount a tmpfs on {path}"
        mounted.append(path)

    yield mount
    for path in reversed(mounted):
        _umount(path)


def _filler(target: Path, then: float) -> str:
    """A candidate that fills the filesystem holding ``target``, then reports a score."""
    return (
        f"dd if=/dev/zero of={target} bs=64k 2>/dev/null\n"
        f"dd if=/dev/zero bs=4k 2>/dev/null >> {target}\n"  # to the last page
        "yes 'some training output' | head -c 20000\n"
        f"echo score: {then}\n"
    )


def _replay(tmp_path: Path, filler: str) -> Path:
    proposals = [PROPOSALS[0], {"description": "fill", "edits": {"run.sh": filler}}, PROPOSALS[2]]
    path = tmp_path / "proposals.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    return path


def _one_sentence(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


def _resumes(study: FaultStudy, replay: Path, filler: Path) -> None:
    """Space freed: the record is intact and the same tag resumes and finishes."""
    rows = log_rows(study.root)
    assert [(r["description"], r["status"]) for r in rows] == [
        ("baseline", "baseline"),
        ("three", "keep"),
        ("fill", "running"),
    ]
    assert [r["metric"] for r in rows[:2]] == [5.0, 3.0]
    filler.unlink()
    done = ratchet(*study.replay_args(replay))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_consistent(
        study,
        ["baseline", "three", "fill", "two"],
        ["baseline", "keep", "interrupted", "keep"],
    )


def test_disk_full_while_writing_the_ledger(
    fault_study: FaultStudy, tmp_path: Path, small_disk: Callable[[Path, str], None]
) -> None:
    state = fault_study.root / ".ratchet"
    small_disk(state, "1m")  # the ledger, results.tsv and the locks
    small_disk(state / "worktrees", "16m")  # the rest keeps its room
    small_disk(state / "logs", "16m")
    filler = state / "filler"
    replay = _replay(tmp_path, _filler(filler, 4))

    done = ratchet(*fault_study.replay_args(replay))
    assert done.returncode == 2, done.stdout + done.stderr
    line = _one_sentence(done)
    assert "No space left on device" in line or "disk is full" in line, line
    assert str(state) in line
    assert wait_no_processes(fault_study.marker, str(fault_study.root)) == []

    # A retry before any space is freed, of this tag or a new one, says why it
    # cannot go on (and not "move the ledger aside"), and changes nothing.
    ledger = (state / "ledger.sqlite").read_bytes()
    for extra in ([], ["--tag", "other"]):
        done = ratchet(*fault_study.replay_args(replay, *extra))
        assert done.returncode == 2, done.stdout + done.stderr
        line = _one_sentence(done)
        assert "No space left on device" in line or "is full" in line, line
        assert "free" in line and "bug in ratchet" not in line and "move it aside" not in line
    assert (state / "ledger.sqlite").read_bytes() == ledger
    _resumes(fault_study, replay, filler)


def test_disk_full_while_writing_a_log(
    fault_study: FaultStudy, tmp_path: Path, small_disk: Callable[[Path, str], None]
) -> None:
    logs = fault_study.root / ".ratchet" / "logs"
    small_disk(logs, "1m")
    filler = logs / "filler"
    replay = _replay(tmp_path, _filler(filler, 4))

    done = ratchet(*fault_study.replay_args(replay))
    assert done.returncode != 0, done.stdout + done.stderr
    line = _one_sentence(done)
    assert "No space left on device" in line, line
    assert str(logs) in line, "the sentence should name the log that could not be written"
    assert "bug in ratchet" not in line, "a full disk is not a bug: " + line
    assert wait_no_processes(fault_study.marker, str(fault_study.root)) == []
    _resumes(fault_study, replay, filler)
