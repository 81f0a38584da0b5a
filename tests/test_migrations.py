"""Ledger migrations and the read-only open: old ledger files, real SQLite, every row kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ratchet.errors import LedgerError
from ratchet.models import FINAL_STATUSES
from ratchet.store.ledger import Ledger
from ratchet.store.migrations import LATEST, migrate, version


def old_ledger(path: Path, upto: int) -> None:
    """A ledger file as Ratchet wrote it at schema ``upto``, with a baseline and a discard."""
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, upto=upto)
    for exp_id, status, metric in ((1, "baseline", 5.0), (2, "discard", 6.0)):
        db.execute(
            "INSERT INTO experiments (id, tag, parent, commit_sha, description, rationale, meta,"
            " input_tokens, output_tokens, cost_usd, log_dir, created_at)"
            " VALUES (?, 'main', NULL, 'c', 'd', '', '{}', 0, 0, 0, '', 0)",
            (exp_id,),
        )
        db.execute(
            "INSERT INTO samples (experiment_id, seed, value, extras, status, reason, duration_s,"
            " created_at) VALUES (?, 0, ?, '{}', 'ok', '', 1.0, 0)",
            (exp_id, metric),
        )
        db.execute("INSERT INTO outcomes VALUES (?, ?, ?, '', 1.0, 0)", (exp_id, status, metric))
    db.close()


@pytest.mark.parametrize("upto", range(1, LATEST + 1))
def test_an_old_ledger_is_carried_up_to_the_latest_schema(tmp_path: Path, upto: int) -> None:
    path = tmp_path / "ledger.sqlite"
    old_ledger(path, upto)
    ledger = Ledger(path)
    try:
        before = [(e.id, e.status, e.metric, e.samples) for e in ledger.experiments()]
        assert before == [(1, "baseline", 5.0, [5.0]), (2, "discard", 6.0, [6.0])]
        assert ledger.get(1).worker == "" and ledger.get(1).budget_s is None
        new = ledger.start(
            tag="main", parent="c", commit="c", description="again",
            budget_s=10.0, worker="w0", host="box", proposer="mutate",
        )  # fmt: skip
        ledger.finish(new, status="remeasure", metric=5.1)
        got = ledger.get(new)
        assert (got.budget_s, got.worker, got.host, got.proposer) == (10.0, "w0", "box", "mutate")
    finally:
        ledger.close()
    db = sqlite3.connect(path)
    try:
        assert version(db) == LATEST
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE outcomes SET metric = 0")  # the rebuilt tables stay append-only
        with pytest.raises(sqlite3.DatabaseError, match="already finished"):
            db.execute(
                "INSERT INTO samples (experiment_id, seed, value, extras, status, reason,"
                " duration_s, created_at) VALUES (1, 1, 1.0, '{}', 'ok', '', 0, 0)"
            )
    finally:
        db.close()


def test_every_status_the_code_knows_can_be_recorded(tmp_path: Path) -> None:
    """A status added to models without a migration step would fail here, not in a run."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        for status in FINAL_STATUSES:
            exp_id = ledger.start(tag="t", parent=None, commit=None, description=status)
            ledger.finish(exp_id, status=status, metric=None)
        assert [e.status for e in ledger.experiments()] == list(FINAL_STATUSES)
    finally:
        ledger.close()


def test_read_only_never_creates_migrates_or_writes(tmp_path: Path) -> None:
    path = tmp_path / ".ratchet" / "ledger.sqlite"
    with pytest.raises(LedgerError, match="no ledger at .* run `ratchet run` first"):
        Ledger(path, read_only=True)
    assert not path.parent.exists()
    path.parent.mkdir()
    old_ledger(path, 1)
    data = path.read_bytes()
    reader = Ledger(path, read_only=True)
    try:
        assert [(e.id, e.status, e.proposer) for e in reader.experiments()] == [
            (1, "baseline", ""),
            (2, "discard", ""),
        ]
        with pytest.raises(LedgerError, match="opened read-only"):
            reader.start(tag="main", parent=None, commit=None, description="x")
    finally:
        reader.close()
    assert path.read_bytes() == data  # still schema 1: only a writer migrates


def test_a_reader_sees_what_an_open_writer_records(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    writer = Ledger(path)
    try:
        first = writer.start(tag="t", parent=None, commit="c", description="a", worker="w0")
        reader = Ledger(path, read_only=True)
        try:
            assert [e.status for e in reader.experiments()] == ["running"]
            writer.finish(first, status="baseline", metric=1.0)
            assert [(e.status, e.worker) for e in reader.experiments()] == [("baseline", "w0")]
        finally:
            reader.close()
    finally:
        writer.close()
