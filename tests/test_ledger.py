"""ledger: real SQLite files; append-only for real, damage reported and never touched."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from ratchet.errors import LedgerError
from ratchet.models import Usage
from ratchet.store.ledger import Ledger

SHA = "0123456789abcdef0123456789abcdef01234567"
PARENT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".ratchet" / "ledger.sqlite"


@pytest.fixture
def ledger(path: Path):  # noqa: ANN201 - a generator fixture
    opened = Ledger(path)
    yield opened
    opened.close()


def run(
    ledger: Ledger, tag: str, status: str | None, metric: float | None = None, **extras: float
) -> int:
    """One experiment with one sample; finished unless ``status`` is None."""
    exp_id = ledger.start(tag=tag, parent=PARENT, commit=SHA, description=f"{tag} {status}")
    ledger.add_sample(exp_id, seed=0, value=metric, extras=extras, status="ok")
    if status is not None:
        ledger.finish(exp_id, status=status, metric=metric)
    return exp_id


def make_real_ledger(path: Path, n: int = 40) -> bytes:
    """A closed ledger with enough rows to span many pages; returns its bytes."""
    ledger = Ledger(path)
    for i in range(n):
        run(ledger, "t", "keep", float(i), peak_vram_mb=1024.0 * i)
    ledger.close()
    return path.read_bytes()


# --- round trip ------------------------------------------------------------------


def test_start_sample_finish_round_trip(ledger: Ledger) -> None:
    before = time.time()
    exp_id = ledger.start(
        tag="nov26",
        parent=PARENT,
        commit=SHA,
        description="larger LR",
        rationale="loss still falling",
        meta={"changes": [["LR", 0.02]]},
        usage=Usage(input_tokens=120, output_tokens=30, cost_usd=0.004),
        log_dir=".ratchet/logs/1",
    )
    running = ledger.get(exp_id)
    assert running.status == "running" and running.metric is None and running.samples == []
    ledger.add_sample(exp_id, seed=0, value=0.91, extras={"peak_vram_mb": 500.0}, status="ok")
    ledger.add_sample(exp_id, seed=1, value=None, status="crash", reason="oom", duration_s=2.0)
    ledger.add_sample(exp_id, seed=2, value=0.89, extras={"tokens_per_s": 9.5}, status="ok")
    ledger.finish(exp_id, status="keep", metric=0.90, reason="beats 0.95", duration_s=12.5)
    exp = ledger.get(exp_id)
    assert (exp.id, exp.tag, exp.parent, exp.commit) == (exp_id, "nov26", PARENT, SHA)
    assert (exp.status, exp.metric, exp.reason, exp.duration_s) == (
        "keep",
        0.90,
        "beats 0.95",
        12.5,
    )
    assert exp.samples == [0.91, 0.89]
    assert exp.extras == {"tokens_per_s": 9.5}
    assert (exp.description, exp.rationale) == ("larger LR", "loss still falling")
    assert exp.meta == {"changes": [["LR", 0.02]]}
    assert exp.usage == Usage(120, 30, 0.004)
    assert exp.log_dir == ".ratchet/logs/1"
    assert before <= exp.created_at <= time.time()
    assert ledger.experiments() == [exp]


def test_ids_are_unique_across_tags_and_listed_oldest_first(ledger: Ledger) -> None:
    ids = [run(ledger, tag, "discard", 1.0) for tag in ("a", "b", "a", "c", "b")]
    assert ids == sorted(set(ids))
    assert [e.id for e in ledger.experiments("a")] == [ids[0], ids[2]]
    assert [e.id for e in ledger.experiments()] == ids
    assert ledger.tags() == ["a", "b", "c"]
    assert ledger.experiments("none") == []


def test_log_dir_may_name_the_new_id(ledger: Ledger) -> None:
    first = run(ledger, "t", "keep", 1.0)
    exp_id = ledger.start(tag="u", parent=None, commit=SHA, description="x", log_dir="logs/{id}")
    assert exp_id == first + 1 and ledger.get(exp_id).log_dir == f"logs/{exp_id}"
    assert run(ledger, "t", None) == exp_id + 1


def test_pins_latest_per_tag(ledger: Ledger) -> None:
    assert ledger.pins("t") is None
    ledger.record_pins("t", {"evaluate.py": "aa", "ratchet.toml": "bb"})
    ledger.record_pins("u", {"evaluate.py": "zz"})
    ledger.record_pins("t", {"evaluate.py": "cc"})
    assert ledger.pins("t") == {"evaluate.py": "cc"}
    assert ledger.pins("u") == {"evaluate.py": "zz"}


def test_the_file_is_in_wal_mode(ledger: Ledger, path: Path) -> None:
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


# --- append-only -------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE experiments SET description = 'rewritten'",
        "DELETE FROM experiments",
        "UPDATE samples SET value = 0.0",
        "DELETE FROM samples",
        "UPDATE outcomes SET status = 'keep'",
        "DELETE FROM outcomes",
        "UPDATE pins SET pins = '{}'",
        "DELETE FROM pins",
    ],
)
def test_update_and_delete_are_refused(ledger: Ledger, path: Path, statement: str) -> None:
    exp_id = run(ledger, "t", "crash")
    ledger.record_pins("t", {"a": "b"})
    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(statement)
    raw.close()
    assert ledger.get(exp_id).status == "crash" and ledger.pins("t") == {"a": "b"}


def test_finish_twice_is_refused(ledger: Ledger) -> None:
    exp_id = run(ledger, "t", "discard", 2.0)
    with pytest.raises(LedgerError, match=f"experiment {exp_id} .* already finished"):
        ledger.finish(exp_id, status="keep", metric=1.0)
    assert ledger.get(exp_id).status == "discard"


@pytest.mark.parametrize("status", ["running", "ok", ""])
def test_finish_needs_a_final_status(ledger: Ledger, status: str) -> None:
    exp_id = run(ledger, "t", None)
    with pytest.raises(LedgerError, match="use one of baseline, keep"):
        ledger.finish(exp_id, status=status, metric=None)


def test_unknown_experiment_and_late_samples_are_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="experiment 99 .* does not exist"):
        ledger.finish(99, status="crash", metric=None)
    with pytest.raises(LedgerError, match="no experiment 99"):
        ledger.get(99)
    exp_id = run(ledger, "t", "keep", 1.0)
    with pytest.raises(LedgerError, match="already finished"):
        ledger.add_sample(exp_id, seed=1, value=2.0, status="ok")
    assert ledger.get(exp_id).samples == [1.0]


def test_mark_interrupted(ledger: Ledger) -> None:
    done = run(ledger, "a", "keep", 1.0)
    first = run(ledger, "a", None)
    other_tag = run(ledger, "b", None)
    second = run(ledger, "a", None)
    assert ledger.mark_interrupted("a", "killed") == [first, second]
    assert ledger.mark_interrupted("a") == []
    statuses = {e.id: (e.status, e.reason, e.metric) for e in ledger.experiments()}
    assert statuses[first] == statuses[second] == ("interrupted", "killed", None)
    assert statuses[done][0] == "keep" and statuses[other_tag][0] == "running"


# --- results.tsv ------------------------------------------------------------------------


def test_export_tsv_format(ledger: Ledger, tmp_path: Path) -> None:
    base = ledger.start(tag="t", parent=None, commit=SHA, description="baseline")
    ledger.add_sample(base, seed=0, value=0.9979, extras={"peak_vram_mb": 45060.2}, status="ok")
    ledger.finish(base, status="baseline", metric=0.9979)
    crash = ledger.start(tag="t", parent=SHA, commit=PARENT, description="double\tthe\nwidth")
    ledger.add_sample(crash, seed=0, value=None, status="crash", reason="OOM")
    ledger.finish(crash, status="crash", metric=None, reason="OOM")
    ledger.start(tag="t", parent=SHA, commit=PARENT, description="still running")
    rejected = ledger.start(tag="t", parent=SHA, commit=None, description="touches evaluate.py")
    ledger.finish(rejected, status="rejected", metric=None, reason="protected file")
    run(ledger, "other", "keep", 0.5)
    out = tmp_path / "results.tsv"
    ledger.export_tsv(out, "val_bpb", tag="t")
    assert out.read_text() == (
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
        "0123456\t0.997900\t44.0\tbaseline\tbaseline\n"
        "fedcba9\t\t0.0\tcrash\tdouble the width\n"
        "\t\t0.0\trejected\ttouches evaluate.py\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ratchet", "results.tsv"]
    ledger.export_tsv(out, "val_bpb")
    assert out.read_text().count("\n") == 5 and out.read_text().endswith("other keep\n")


# --- damaged files --------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)


def _truncated_half(path: Path) -> None:
    data = make_real_ledger(path)
    path.write_bytes(data[: len(data) // 2])


def _truncated_header(path: Path) -> None:
    data = make_real_ledger(path)
    path.write_bytes(data[:100])


def _bad_page(path: Path) -> None:
    data = bytearray(make_real_ledger(path))
    page = 4096
    data[3 * page : 4 * page] = b"\xff" * page
    path.write_bytes(bytes(data))


def _other_database(path: Path) -> None:
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE notes (text TEXT)")
    raw.execute("INSERT INTO notes VALUES ('mine')")
    raw.commit()
    raw.close()


@pytest.mark.parametrize(
    "damage", [_garbage, _truncated_half, _truncated_header, _bad_page, _other_database]
)
def test_a_damaged_file_is_refused_and_left_untouched(path: Path, damage) -> None:  # noqa: ANN001
    path.parent.mkdir(parents=True)
    damage(path)
    before = path.read_bytes()
    siblings = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(LedgerError) as caught:
        Ledger(path)
    message = str(caught.value)
    assert str(path) in message and "ratchet doctor" in message and "\n" not in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == siblings


def test_an_empty_file_is_a_new_ledger(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    ledger = Ledger(path)
    assert ledger.experiments() == []
    ledger.close()


def test_a_ledger_survives_reopening(path: Path) -> None:
    make_real_ledger(path, n=3)
    ledger = Ledger(path)
    assert [e.metric for e in ledger.experiments()] == [0.0, 1.0, 2.0]
    assert run(ledger, "t", "keep", 3.0) == 4
    ledger.close()


# --- two connections ---------------------------------------------------------------------


def test_two_ledgers_on_one_file(path: Path) -> None:
    writer, reader = Ledger(path), Ledger(path)
    try:
        exp_id = writer.start(tag="t", parent=None, commit=SHA, description="baseline")
        assert reader.get(exp_id).status == "running"
        reader.add_sample(exp_id, seed=0, value=1.5, status="ok")
        writer.add_sample(exp_id, seed=1, value=1.7, status="ok")
        reader.finish(exp_id, status="baseline", metric=1.6)
        assert writer.get(exp_id).samples == [1.5, 1.7]
        assert writer.get(exp_id).status == "baseline"
        with pytest.raises(LedgerError, match="already finished"):
            writer.finish(exp_id, status="keep", metric=1.0)
        second = reader.start(tag="u", parent=None, commit=SHA, description="x")
        assert second == exp_id + 1 and writer.tags() == ["t", "u"]
    finally:
        writer.close()
        reader.close()


def test_reads_follow_writes_from_another_connection(path: Path) -> None:
    writer, reader = Ledger(path), Ledger(path)
    try:
        done = run(writer, "t", "keep", 1.0)
        running = run(writer, "t", None)
        assert [e.status for e in reader.experiments("t")] == ["keep", "running"]
        writer.add_sample(running, seed=1, value=2.0, status="ok")
        writer.finish(running, status="discard", metric=1.5)
        later = run(writer, "t", "crash")
        listed = reader.experiments("t")
        assert [(e.id, e.status) for e in listed] == [
            (done, "keep"),
            (running, "discard"),
            (later, "crash"),
        ]
        assert listed[1].samples == [2.0] and reader.get(running).metric == 1.5
    finally:
        writer.close()
        reader.close()
