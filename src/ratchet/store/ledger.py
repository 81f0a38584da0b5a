"""The append-only record of every experiment: ``.ratchet/ledger.sqlite``.

Why SQLite: one file, safe under concurrent readers (``ratchet status`` and
the dashboard read while ``ratchet run`` writes, thanks to WAL), and each
write is one small transaction that survives a kill -9 of the orchestrator.

Why append-only, for real: an experiment, its samples and its outcome are
rows in three tables, and triggers abort any UPDATE or DELETE on them, so a
bug (or a proposer) cannot rewrite history. An experiment's status comes
from its outcome row, and is ``running`` while it has none; finishing twice
is refused by the outcome table's primary key. The outcome's status is
checked against ``models.FINAL_STATUSES``. The schema is a list of numbered
steps (``migrations``): an older ledger is carried up to the latest when it
is opened for writing, keeping every row. ``Ledger(path, read_only=True)``
(``status``, ``log``, ``report``, the dashboard) never writes, never
migrates, and reads an older file as it is (missing columns read as empty).

A damaged file is reported, never repaired or replaced: the ledger is the
one record of what was tried, so Ratchet stops with a sentence naming the
file and the fix and leaves the bytes as they are. An empty (0-byte) file or
an empty SQLite database counts as new, since there is nothing in it to lose.
"""

from __future__ import annotations

import errno
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import LedgerError
from ..models import FINAL_STATUSES, Experiment, Note, Usage
from ..safetext import printable
from .atomic import write_atomically
from .migrations import LATEST, TABLES, migrate

__all__ = ["Ledger", "SCHEMA_VERSION"]

SCHEMA_VERSION = LATEST  # the number of the last migration step
BUSY_TIMEOUT_MS = 10_000
FIX = (
    "move it aside and rerun with a new --tag (the old tag's refs would be overwritten),"
    " or run `ratchet doctor`"
)

INSERT_EXPERIMENT = (
    "INSERT INTO experiments (id, tag, parent, commit_sha, description, rationale, meta,"
    " input_tokens, output_tokens, cost_usd, log_dir, created_at, budget_s, worker, host,"
    " proposer, parent_id, island, node_kind)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
NEXT_ID = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'experiments'), 0),"
    " COALESCE((SELECT MAX(id) FROM experiments), 0)) + 1"
)
UNFINISHED = (
    "SELECT e.id FROM experiments e LEFT JOIN outcomes o ON o.experiment_id = e.id"
    " WHERE e.tag = ? AND o.status IS NULL ORDER BY e.id"
)
_EXPERIMENT_SQL = """
SELECT e.id, e.tag, e.parent, e.commit_sha, e.description, e.rationale, e.meta,
       e.input_tokens, e.output_tokens, e.cost_usd, e.log_dir, e.created_at,
       o.status, o.metric, o.reason, o.duration_s, {provenance}
FROM experiments e LEFT JOIN outcomes o ON o.experiment_id = e.id
"""
# Columns of migrations 3 (provenance) and 4 (lineage), read as empty from older files.
PROVENANCE = ("budget_s", "worker", "host", "proposer", "parent_id", "island", "node_kind")
_EMPTY = {
    "budget_s": "NULL", "worker": "''", "host": "''", "proposer": "''",
    "parent_id": "NULL", "island": "NULL", "node_kind": "''",
}  # fmt: skip
_SAMPLE_SQL = """
SELECT s.experiment_id, s.value, s.extras
FROM samples s JOIN experiments e ON e.id = s.experiment_id
"""


def _json(data: Mapping[str, Any] | None) -> str:
    """JSON for a meta/extras column (sorted, so equal data is equal text)."""
    return json.dumps(dict(data or {}), sort_keys=True, default=str)


def _single_line(text: str) -> str:
    """A description fit for one TSV cell: printable, tabs and line breaks become spaces."""
    return printable(text)


class Ledger:
    """The study's SQLite record; safe to open twice (one writer, any readers).

    One object may be shared by threads (the dashboard reads while the loop
    writes): calls are serialized by a lock.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open (or create) the ledger, refusing a damaged file without touching it.

        ``read_only``: the file must exist; nothing is created, migrated or written
        (a write raises ``LedgerError``), so a reader never changes what it reads.
        """
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._finished: dict[int, Experiment] = {}
        self._tsv_lines: dict[int, str] = {}  # results.tsv line of a finished experiment
        if read_only and not self.path.is_file():
            raise LedgerError(f"there is no ledger at {self.path} yet — run `ratchet run` first")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        self._db = self._connect()
        try:
            self._check_existing()
            if not read_only:
                self._configure()
                with self._errors("upgrade the ledger's tables"):
                    migrate(self._db)
            self._experiment_sql = self._select_sql()
        except BaseException:
            self._db.close()
            raise

    # -- opening --

    def _connect(self) -> sqlite3.Connection:
        """A connection in autocommit mode: each statement is its own transaction."""
        if self.path.is_dir():
            raise LedgerError(f"{self.path} is a directory, not a ledger — {FIX}")
        try:
            target = f"{self.path.resolve().as_uri()}?mode=ro" if self.read_only else self.path
            return sqlite3.connect(
                target,
                uri=self.read_only,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open {self.path}: {exc} — {FIX}") from None

    def _check_existing(self) -> None:
        """Read-only checks before anything is written: a bad file raises, untouched."""
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            names = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.OperationalError as exc:
            raise LedgerError(
                f"cannot read {self.path} ({exc}) — check its permissions, or {FIX}"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path} is damaged or not a ledger ({exc}) — {FIX}") from None
        if check != "ok":
            detail = " ".join(x for x in str(check).splitlines() if not x.startswith("***"))
            raise LedgerError(f"{self.path} is damaged ({detail[:200]}) — {FIX}")
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} was written by a newer Ratchet (schema {version})"
                " — upgrade ratchet (pip install -U ratchetlab) and rerun"
            )
        if names and (version == 0 or not set(TABLES) <= names):
            raise LedgerError(f"{self.path} is a SQLite file but not a Ratchet ledger — {FIX}")

    def _configure(self) -> None:
        """WAL so readers never block the writer; NORMAL sync is crash-safe in WAL."""
        with self._errors("configure"):
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")

    def _select_sql(self) -> str:
        """The experiments query; columns an older (read-only) file lacks read as empty."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(experiments)")}
        columns = [f"e.{c}" if c in have else f"{_EMPTY[c]} AS {c}" for c in PROVENANCE]
        return _EXPERIMENT_SQL.format(provenance=", ".join(columns))

    @contextmanager
    def _errors(self, action: str, *, write: bool = False) -> Iterator[None]:
        """Serialize access and turn any SQLite failure into a one-sentence LedgerError."""
        if write and self.read_only:
            raise LedgerError(f"cannot {action}: {self.path} was opened read-only")
        with self._lock:
            try:
                yield
            except sqlite3.IntegrityError as exc:
                raise LedgerError(f"cannot {action} in {self.path}: {exc}") from None
            except sqlite3.Error as exc:
                if _disk_full(exc):  # the file is fine: moving it aside would not help
                    raise LedgerError(
                        f"cannot {action} in {self.path}: the disk is full — free some space"
                        " and rerun the same tag; nothing recorded is lost"
                    ) from None
                raise LedgerError(
                    f"cannot {action} in {self.path}: {exc} — check the disk, or {FIX}"
                ) from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Several statements as one atomic write (the caller holds ``_errors``)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:  # some errors already rolled back
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (the last one out folds the WAL back into the file)."""
        with self._lock:
            self._db.close()

    # -- writes: one INSERT, one transaction --

    def record_pins(self, tag: str, pins: Mapping[str, str]) -> None:
        """Store the protected files' hashes at the start of a run (a new row each time)."""
        with self._errors("record pins", write=True):
            self._db.execute(
                "INSERT INTO pins (tag, pins, created_at) VALUES (?, ?, ?)",
                (tag, _json(pins), time.time()),
            )

    def add_note(self, tag: str, text: str) -> Note:
        """Append a human's steering note for ``tag`` (``ratchet note``)."""
        now = time.time()
        with self._errors("record the note", write=True):
            cur = self._db.execute(
                "INSERT INTO notes (tag, text, created_at) VALUES (?, ?, ?)", (tag, text, now)
            )
        return Note(int(cur.lastrowid or 0), tag, text, now)

    def void(self, exp_id: int, reason: str) -> None:
        """Append a void record: the keep ``exp_id`` no longer counts (``ratchet invalidate``)."""
        with self._errors("record the invalidation", write=True):
            self._db.execute(
                "INSERT INTO voids (experiment_id, reason, created_at) VALUES (?, ?, ?)",
                (exp_id, reason, time.time()),
            )

    def start(
        self,
        *,
        tag: str,
        parent: str | None,
        commit: str | None,
        description: str,
        rationale: str = "",
        meta: Mapping[str, Any] | None = None,
        usage: Usage | None = None,
        log_dir: str = "",
        budget_s: float | None = None,
        worker: str = "",
        host: str = "",
        proposer: str = "",
        parent_id: int | None = None,
        island: int | None = None,
        node_kind: str = "",
    ) -> int:
        """Record an experiment as running before it runs; return its id (unique across tags).

        ``budget_s`` (the run phase's budget), ``worker``, ``host`` and ``proposer``
        say where and how it ran, for the log and the dashboard; ``parent_id``,
        ``island`` and ``node_kind`` its lineage, as the search policy chose it.

        The id is only known here, and rows are never updated, so ``log_dir``
        may contain ``{id}``, replaced by the new id (e.g. ``.ratchet/logs/{id}``).
        """
        usage = usage or Usage()
        row = (tag, parent, commit, description, rationale, _json(meta))
        row += (usage.input_tokens, usage.output_tokens, usage.cost_usd, log_dir, time.time())
        row += (budget_s, worker, host, proposer, parent_id, island, node_kind)
        with self._errors("start an experiment", write=True):
            if "{id}" not in log_dir:
                return int(self._db.execute(INSERT_EXPERIMENT, (None, *row)).lastrowid or 0)
            with self._transaction():
                exp_id = self._db.execute(NEXT_ID).fetchone()[0]
                row = (*row[:9], log_dir.replace("{id}", str(exp_id)), *row[10:])
                self._db.execute(INSERT_EXPERIMENT, (exp_id, *row))
        return int(exp_id)

    def add_sample(
        self,
        exp_id: int,
        *,
        seed: int,
        value: float | None,
        extras: Mapping[str, float] | None = None,
        status: str,
        reason: str = "",
        duration_s: float = 0.0,
    ) -> None:
        """Record one measurement (one seed) of a running experiment."""
        row = (exp_id, seed, value, _json(extras), status, reason, duration_s, time.time())
        with self._errors(f"add a sample to experiment {exp_id}", write=True):
            self._db.execute(
                "INSERT INTO samples (experiment_id, seed, value, extras, status, reason,"
                " duration_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def finish(
        self,
        exp_id: int,
        *,
        status: str,
        metric: float | None,
        reason: str = "",
        duration_s: float = 0.0,
    ) -> None:
        """Record the outcome; an experiment has exactly one."""
        if status not in FINAL_STATUSES:
            raise LedgerError(
                f"cannot finish experiment {exp_id} with status {status!r}"
                f" — use one of {', '.join(FINAL_STATUSES)}"
            )
        with self._errors(f"finish experiment {exp_id}", write=True):
            self._insert_outcome(exp_id, status, metric, reason, duration_s)

    def _insert_outcome(
        self, exp_id: int, status: str, metric: float | None, reason: str, duration_s: float
    ) -> None:
        """The outcome row; a clear error for a second outcome or an unknown id."""
        try:
            self._db.execute(
                "INSERT INTO outcomes (experiment_id, status, metric, reason, duration_s,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (exp_id, status, metric, reason, duration_s, time.time()),
            )
        except sqlite3.IntegrityError:
            row = self._db.execute(
                "SELECT status FROM outcomes WHERE experiment_id = ?", (exp_id,)
            ).fetchone()
            what = f"already finished ({row[0]})" if row else "does not exist"
            raise LedgerError(f"experiment {exp_id} in {self.path} {what}") from None

    def mark_interrupted(
        self, tag: str, reason: str = "ratchet stopped before this experiment finished"
    ) -> list[int]:
        """Give every unfinished experiment of ``tag`` the outcome ``interrupted``."""
        with self._errors(f"mark tag {tag!r} interrupted", write=True), self._transaction():
            ids = [r[0] for r in self._db.execute(UNFINISHED, (tag,))]
            now = time.time()
            self._db.executemany(
                "INSERT INTO outcomes (experiment_id, status, metric, reason, duration_s,"
                " created_at) VALUES (?, 'interrupted', NULL, ?, 0.0, ?)",
                [(i, reason, now) for i in ids],
            )
        return ids

    # -- reads --

    def pins(self, tag: str) -> dict[str, str] | None:
        """The latest pins recorded for ``tag``, or None before its first run."""
        with self._errors("read pins"):
            row = self._db.execute(
                "SELECT pins FROM pins WHERE tag = ? ORDER BY id DESC LIMIT 1", (tag,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def notes(self, tag: str | None = None) -> list[Note]:
        """The steering notes (of ``tag``, or all), oldest first; none in an older file."""
        if not self._has("notes"):
            return []
        where, args = ("WHERE tag = ?", (tag,)) if tag is not None else ("", ())
        with self._errors("read notes"):
            rows = self._db.execute(
                f"SELECT id, tag, text, created_at FROM notes {where} ORDER BY id", args
            ).fetchall()
        return [Note(*row) for row in rows]

    def _voids(self) -> dict[int, str]:
        """Why each voided experiment was voided (several records: the reasons joined)."""
        if not self._has("voids"):
            return {}
        found: dict[int, str] = {}
        for exp_id, reason in self._db.execute(
            "SELECT experiment_id, reason FROM voids ORDER BY id"
        ):
            found[exp_id] = f"{found[exp_id]}; {reason}" if exp_id in found else reason
        return found

    def _has(self, table: str) -> bool:
        """Whether the file has ``table`` (a read-only open of an older ledger may not)."""
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return row is not None

    def get(self, exp_id: int) -> Experiment:
        """One experiment with its samples and outcome."""
        found = self._select(["e.id = ?"], [exp_id])
        if not found:
            raise LedgerError(f"there is no experiment {exp_id} in {self.path} — see `ratchet log`")
        return found[0]

    def experiments(self, tag: str | None = None) -> list[Experiment]:
        """Every experiment (of ``tag``, or all tags), oldest first."""
        return self._select([], []) if tag is None else self._select(["e.tag = ?"], [tag])

    def tags(self) -> list[str]:
        """Every tag with at least one experiment, in the order they first appeared."""
        with self._errors("read tags"):
            rows = self._db.execute(
                "SELECT tag FROM experiments GROUP BY tag ORDER BY MIN(id)"
            ).fetchall()
        return [r[0] for r in rows]

    def _select(self, conditions: list[str], args: list[Any]) -> list[Experiment]:
        """Matching experiments, oldest first, reading only what is not cached yet.

        A finished experiment can never change (no updates, no samples after
        the outcome), so it is decoded once and kept; the loop reads the
        history several times per experiment and this keeps that cheap for
        long runs. Returned objects are shared: treat them as read-only.
        """
        with self._errors("read experiments"), self._read():
            where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            ids = self._db.execute(f"SELECT e.id FROM experiments e {where} ORDER BY e.id", args)
            ids = [r[0] for r in ids]
            todo = [i for i in ids if i not in self._finished]
            fresh = self._load([*conditions, "e.id >= ?"], [*args, todo[0]]) if todo else {}
            voids = self._voids()
        found = [self._finished.get(i) or fresh[i] for i in ids]
        return [replace(e, void=voids[e.id]) if e.id in voids else e for e in found]

    def _load(self, conditions: list[str], args: list[Any]) -> dict[int, Experiment]:
        """Decode experiments with their samples; remember the finished ones."""
        where = f"WHERE {' AND '.join(conditions)}"
        rows = self._db.execute(f"{self._experiment_sql} {where} ORDER BY e.id", args).fetchall()
        samples = self._db.execute(f"{_SAMPLE_SQL} {where} ORDER BY s.id", args).fetchall()
        values: dict[int, list[float]] = {}
        extras: dict[int, str] = {}
        for exp_id, value, extra in samples:
            if value is not None:
                values.setdefault(exp_id, []).append(value)
            extras[exp_id] = extra
        loaded = {r[0]: _experiment(r, values.get(r[0], []), extras.get(r[0])) for r in rows}
        self._finished.update((i, e) for i, e in loaded.items() if e.status != "running")
        return loaded

    @contextmanager
    def _read(self) -> Iterator[None]:
        """One read transaction, so several queries see the same state of the file."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    # -- results.tsv --

    def export_tsv(self, path: Path, metric_name: str, tag: str | None = None) -> None:
        """Write autoresearch's results.tsv atomically; a failure never gets a fake score."""
        lines = [f"commit\t{metric_name}\tmemory_gb\tstatus\tdescription"]
        lines += [self._tsv_line(e) for e in self.experiments(tag) if e.status != "running"]
        try:
            write_atomically(Path(path), "\n".join(lines) + "\n")
        except OSError as exc:
            fix = " — free some disk space and rerun" if exc.errno == errno.ENOSPC else ""
            raise LedgerError(f"cannot write {path}: {exc.strerror or exc}{fix}") from None

    def _tsv_line(self, exp: Experiment) -> str:
        """A finished row never changes, so its line is built once: long runs rewrite the
        file after every experiment without re-rendering the whole history."""
        line = self._tsv_lines.get(exp.id)
        if line is None:
            line = self._tsv_lines[exp.id] = _tsv_row(exp)
        return line


def _disk_full(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL: a write found no room (``sqlite_errorcode`` exists from Python 3.11)."""
    return getattr(exc, "sqlite_errorcode", None) == 13 or "disk is full" in str(exc)


def _experiment(row: tuple[Any, ...], samples: list[float], extras: str | None) -> Experiment:
    """Build the value object from one joined row."""
    (exp_id, tag, parent, commit, description, rationale, meta) = row[:7]
    (input_tokens, output_tokens, cost_usd, log_dir, created_at) = row[7:12]
    (status, metric, reason, duration_s) = row[12:16]
    (budget_s, worker, host, proposer, parent_id, island, node_kind) = row[16:23]
    return Experiment(
        id=exp_id,
        tag=tag,
        parent=parent,
        commit=commit,
        status=status or "running",
        metric=metric,
        samples=samples,
        extras=json.loads(extras) if extras else {},
        description=description,
        rationale=rationale,
        reason=reason or "",
        meta=json.loads(meta),
        usage=Usage(input_tokens, output_tokens, cost_usd),
        created_at=created_at,
        duration_s=duration_s or 0.0,
        log_dir=log_dir,
        budget_s=budget_s,
        worker=worker,
        host=host,
        proposer=proposer,
        parent_id=parent_id,
        island=island,
        node_kind=node_kind,
    )


def _tsv_row(exp: Experiment) -> str:
    """One results.tsv line: short sha, metric (empty when unmeasured), memory, status, text."""
    metric = "" if exp.metric is None else f"{exp.metric:.6f}"
    vram = exp.extras.get("peak_vram_mb")
    usable = isinstance(vram, (int, float)) and math.isfinite(vram)
    memory = f"{vram / 1024:.1f}" if usable else "0.0"
    commit = (exp.commit or "")[:7]
    return f"{commit}\t{metric}\t{memory}\t{exp.status}\t{_single_line(exp.description)}"
