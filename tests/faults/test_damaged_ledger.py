"""A truncated or overwritten ledger is reported and left exactly as it is.

The ledger is the one record of what was tried: `ratchet doctor` names it
and the way out, and `ratchet run` refuses to continue (exit 2, one
sentence) rather than write over it; its bytes are the same afterwards.
The way out works: moved aside, a run under a new tag starts a new ledger
and leaves the old tag's experiment refs (their code) as they were.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import git, ratchet

from .conftest import PROPOSALS, FaultStudy, log_rows


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _overwrite_middle(data: bytes) -> bytes:
    """Garbage over the middle third: whole b-tree pages lose their headers."""
    third = len(data) // 3
    return data[:third] + b"\xab" * third + data[2 * third :]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _damaged(study: FaultStudy, tmp_path: Path, damage: Callable[[bytes], bytes]) -> Path:
    """Record baseline, three and four, then damage the ledger; return the replay file."""
    replay = tmp_path / "proposals.jsonl"
    replay.write_text("".join(json.dumps(p) + "\n" for p in PROPOSALS))
    done = ratchet(*study.replay_args(replay, "--max-experiments", "2"))
    assert done.returncode == 0, done.stdout + done.stderr
    ledger = study.root / ".ratchet" / "ledger.sqlite"
    ledger.write_bytes(damage(ledger.read_bytes()))
    return replay


@pytest.mark.parametrize("damage", [_truncate, _overwrite_middle], ids=["truncated", "overwritten"])
def test_a_damaged_ledger_is_reported_and_never_overwritten(
    fault_study: FaultStudy, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    replay = _damaged(fault_study, tmp_path, damage)
    ledger = fault_study.root / ".ratchet" / "ledger.sqlite"
    before = _sha(ledger)

    doctor = ratchet("doctor", str(fault_study.root))
    assert doctor.returncode != 0
    bad = [line for line in doctor.stdout.splitlines() if line.startswith("BAD")]
    assert len(bad) == 1 and bad[0].split()[1] == "ledger", doctor.stdout
    assert str(ledger) in bad[0] and "damaged" in bad[0]
    assert "move it aside and rerun with a new --tag" in bad[0]

    for args in (fault_study.replay_args(replay), ["log", str(fault_study.root)]):
        done = ratchet(*args)
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(ledger) in lines[0] and "damaged" in lines[0], done.stderr
        assert "Traceback" not in done.stderr
    assert _sha(ledger) == before


def test_the_repair_it_names_keeps_the_old_tags_code(
    fault_study: FaultStudy, tmp_path: Path
) -> None:
    """Moved aside, a new tag starts a new ledger; the old experiments' refs are untouched."""
    replay = _damaged(fault_study, tmp_path, _truncate)
    ledger = fault_study.root / ".ratchet" / "ledger.sqlite"
    refs = git(fault_study.root, "for-each-ref", "refs/ratchet/main/")
    ledger.rename(ledger.with_name("ledger.damaged.sqlite"))
    done = ratchet(*fault_study.replay_args(replay, "--tag", "again", "--max-experiments", "1"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["description"] for r in log_rows(fault_study.root)] == ["baseline", "three"]
    assert git(fault_study.root, "for-each-ref", "refs/ratchet/main/") == refs
    assert len(refs.splitlines()) == 3
