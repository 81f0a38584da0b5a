"""The ledger's schema, as numbered steps: every change to its tables is a new step.

``PRAGMA user_version`` holds the number of the last step a ledger file has
had. Opening a ledger for writing applies the missing steps in order, each in
its own transaction that re-reads the version first, so two processes opening
the same old file upgrade it once. A new ledger runs every step from the first.
A released step is never edited: a change is a new step at the end, and an old
ledger file is carried up to it with every row kept.

1. the tables (experiments, samples, outcomes, pins) and the append-only triggers;
2. outcomes accept ``remeasure`` and ``unconfirmed`` (SQLite cannot change a CHECK
   constraint in place, so the table is copied into a new one, rows as they were);
3. experiments record their budget, worker, host and proposer (empty on old rows);
4. experiments record their lineage: ``parent_id`` (the experiment built on),
   ``island`` (the islands policy's lineage) and ``node_kind`` (improve, debug or
   draft, as the policy asked); NULL / empty on older rows, where the policies
   recover the parent from the parent commit.
5. steering: ``notes`` (a human's notes to the proposer, per tag, with their time) and
   ``voids`` (a keep invalidated later, with the reason), both append-only.

A status added to ``models.FINAL_STATUSES`` needs a step that rebuilds the
outcomes table with it (``_outcomes_accept``); a test checks they agree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

__all__ = ["LATEST", "STEPS", "TABLES", "version", "migrate", "outcome_statuses"]

TABLES = ("experiments", "samples", "outcomes", "pins")
_APPEND_ONLY = "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
_SAMPLES_TRIGGER = """CREATE TRIGGER samples_after_outcome BEFORE INSERT ON samples
WHEN EXISTS (SELECT 1 FROM outcomes WHERE experiment_id = NEW.experiment_id)
BEGIN SELECT RAISE(ABORT, 'experiment already finished'); END"""
_STATUSES_1 = (
    "baseline", "keep", "discard", "crash", "timeout", "pruned", "rejected", "interrupted"
)  # fmt: skip
_STATUSES_2 = (*_STATUSES_1, "remeasure", "unconfirmed")


def _outcomes_table(name: str, statuses: Sequence[str]) -> str:
    listed = ", ".join(f"'{s}'" for s in statuses)
    return f"""CREATE TABLE {name} (
    experiment_id INTEGER PRIMARY KEY REFERENCES experiments (id),
    status TEXT NOT NULL CHECK (status IN ({listed})),
    metric REAL,
    reason TEXT NOT NULL,
    duration_s REAL NOT NULL,
    created_at REAL NOT NULL
)"""


def _append_only(db: sqlite3.Connection, table: str) -> None:
    for verb in ("UPDATE", "DELETE"):
        name = f"{table}_no_{verb.lower()}"
        db.execute(f"CREATE TRIGGER {name} BEFORE {verb} ON {table} {_APPEND_ONLY}")


def _step_1_tables(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tag TEXT NOT NULL,
    parent TEXT,
    commit_sha TEXT,
    description TEXT NOT NULL,
    rationale TEXT NOT NULL,
    meta TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    log_dir TEXT NOT NULL,
    created_at REAL NOT NULL
)""")
    db.execute("CREATE INDEX experiments_by_tag ON experiments (tag, id)")
    db.execute("""CREATE TABLE samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL REFERENCES experiments (id),
    seed INTEGER NOT NULL,
    value REAL,
    extras TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    duration_s REAL NOT NULL,
    created_at REAL NOT NULL
)""")
    db.execute("CREATE INDEX samples_by_experiment ON samples (experiment_id, id)")
    db.execute(_outcomes_table("outcomes", _STATUSES_1))
    db.execute("""CREATE TABLE pins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tag TEXT NOT NULL,
    pins TEXT NOT NULL,
    created_at REAL NOT NULL
)""")
    db.execute("CREATE INDEX pins_by_tag ON pins (tag, id)")
    db.execute(_SAMPLES_TRIGGER)
    for table in TABLES:
        _append_only(db, table)


def _outcomes_accept(db: sqlite3.Connection, statuses: Sequence[str]) -> None:
    """Copy the outcomes into a table whose CHECK lists ``statuses``; triggers recreated."""
    db.execute("DROP TRIGGER IF EXISTS samples_after_outcome")
    db.execute(_outcomes_table("outcomes_new", statuses))
    db.execute(
        "INSERT INTO outcomes_new (experiment_id, status, metric, reason, duration_s, created_at)"
        " SELECT experiment_id, status, metric, reason, duration_s, created_at FROM outcomes"
    )
    db.execute("DROP TABLE outcomes")  # its triggers go with it
    db.execute("ALTER TABLE outcomes_new RENAME TO outcomes")
    db.execute(_SAMPLES_TRIGGER)
    _append_only(db, "outcomes")


def _step_2_statuses(db: sqlite3.Connection) -> None:
    _outcomes_accept(db, _STATUSES_2)


def _step_3_provenance(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE experiments ADD COLUMN budget_s REAL")
    for column in ("worker", "host", "proposer"):
        db.execute(f"ALTER TABLE experiments ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")


def _step_4_lineage(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE experiments ADD COLUMN parent_id INTEGER")
    db.execute("ALTER TABLE experiments ADD COLUMN island INTEGER")
    db.execute("ALTER TABLE experiments ADD COLUMN node_kind TEXT NOT NULL DEFAULT ''")


def _step_5_steering(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tag TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL
)""")
    db.execute("CREATE INDEX notes_by_tag ON notes (tag, id)")
    db.execute("""CREATE TABLE voids (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL REFERENCES experiments (id),
    reason TEXT NOT NULL,
    created_at REAL NOT NULL
)""")
    for table in ("notes", "voids"):
        _append_only(db, table)


STEPS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _step_1_tables,
    _step_2_statuses,
    _step_3_provenance,
    _step_4_lineage,
    _step_5_steering,
)
LATEST = len(STEPS)


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, upto: int = LATEST) -> list[int]:
    """Apply the missing steps up to ``upto``, one transaction each; return those applied.

    ``db`` is in autocommit mode (``isolation_level=None``). ``BEGIN IMMEDIATE``
    takes the write lock before the version is read, so a racing process waits,
    then finds the step done.
    """
    applied: list[int] = []
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            current = version(db)
            if current >= upto:
                db.execute("COMMIT")
                return applied
            STEPS[current](db)
            db.execute(f"PRAGMA user_version = {current + 1}")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        applied.append(current + 1)


def outcome_statuses(db: sqlite3.Connection) -> str:
    """The outcomes table's definition (what its CHECK accepts), for tests and doctor."""
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'"
    ).fetchone()
    return row[0] if row else ""
