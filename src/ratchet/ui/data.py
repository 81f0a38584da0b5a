"""Everything the dashboard reads, as plain dicts: the one data module of ``ratchet ui``.

Why a module of its own: the dashboard is a separate process that must never
slow down or endanger the loop's ledger. So it opens ``.ratchet/ledger.sqlite``
read-only (``file:…?mode=ro``; WAL lets it read while ``ratchet run`` writes),
never takes the tag's lock, and reads files only under the study's
``.ratchet/`` (logs) and through the git wrapper (diffs).

Figures mean what they mean elsewhere, by calling the same code: rows are
``ratchet log --json``'s rows (``commands._row``), the budget and proposer
lines are ``ratchet status``'s (``_budget_lines``, ``_usage_line``), baseline,
best, improvement and keep rate come from ``report.summarize``, and the chart
follows ``progress.png`` (``report._frontier``, ``_y_range``, ``_better``).
The only figure defined here is experiments per hour: finished experiments
over the hours from the first experiment's start to the last one's end.

A finished experiment never changes (the ledger is append-only), so it is
decoded and serialized once and kept; a request over 10,000 experiments then
costs one id query plus the rows still running or new.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any
from urllib.parse import quote

from ..commands import _budget_lines, _row, _usage_line
from ..errors import GitError
from ..gitrepo import Repo
from ..ledger import _EXPERIMENT_SQL, _SAMPLE_SQL, _experiment
from ..memory import _parents, lesson
from ..metrics import parse_output
from ..models import Experiment
from ..prune import curve_key
from ..report import _better, _frontier, _short, _y_range, summarize
from ..stats import spread
from ..study import Study
from ..workspace import STATE_DIR

__all__ = ["StudyData", "TABLE_FIELDS", "chart", "dumps", "lineage", "overview"]

# The keys the experiments table needs; the full rows (meta holds patches) stay on request.
TABLE_FIELDS = (
    "id", "tag", "status", "metric", "samples", "commit", "parent", "description", "reason",
    "confirmed", "duration_s", "created_at", "input_tokens", "output_tokens", "cost_usd",
)  # fmt: skip
TAIL_BYTES = 16_000  # of each log shown first (the end is what explains a failure)
FULL_LOG_BYTES = 2_000_000  # the most of one log served at once
CURVE_BYTES = 8_000_000  # of a run log parsed for its progress curve
LIVE_BYTES = 64_000  # of a running log read every second for its latest progress line
FAILED = ("crash", "timeout", "pruned")  # as in `ratchet status`


class StudyData:
    """Read-only access to one study's ledger, logs and git objects; safe across threads."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.state = (study.root / STATE_DIR).resolve()
        self.path = self.state / "ledger.sqlite"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._finished: dict[int, Experiment] = {}
        self._json: dict[tuple[int, bool], bytes] = {}
        self._repo: Repo | None = None
        self._inode: tuple[int, int] | None = None

    # -- the ledger, read-only --

    def _connect(self) -> sqlite3.Connection | None:
        """The read-only connection, opened once the ledger exists (a study may not have run).

        A ledger moved aside or deleted (and perhaps made anew by the next
        ``ratchet run``) is noticed by its inode, and the old one forgotten.
        """
        try:
            stat = self.path.stat()
            inode: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except OSError:
            inode = None
        if self._db is not None and inode != self._inode:
            self._db.close()
            self._db, self._finished, self._json = None, {}, {}
        if self._db is None and inode is not None:
            uri = f"file:{quote(str(self.path))}?mode=ro"
            self._db = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5
            )
            self._inode = inode
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def experiments(self) -> list[Experiment]:
        """Every experiment of the study, oldest first (finished ones decoded once)."""
        with self._lock:
            db = self._connect()
            if db is None:
                return []
            db.execute("BEGIN")
            try:
                ids = [r[0] for r in db.execute("SELECT id FROM experiments ORDER BY id")]
                todo = [i for i in ids if i not in self._finished]
                fresh = self._load(db, todo[0]) if todo else {}
            except sqlite3.OperationalError as exc:  # created by `ratchet run` a moment ago
                if "no such table" not in str(exc):
                    raise
                return []
            finally:
                db.execute("COMMIT")
        return [self._finished.get(i) or fresh[i] for i in ids]

    def _load(self, db: sqlite3.Connection, first: int) -> dict[int, Experiment]:
        """Decode the experiments from id ``first`` on, as the Ledger does."""
        where = "WHERE e.id >= ?"
        rows = db.execute(f"{_EXPERIMENT_SQL} {where} ORDER BY e.id", (first,)).fetchall()
        samples = db.execute(f"{_SAMPLE_SQL} {where} ORDER BY s.id", (first,)).fetchall()
        values: dict[int, list[float]] = {}
        extras: dict[int, str] = {}
        for exp_id, value, extra in samples:
            if value is not None:
                values.setdefault(exp_id, []).append(value)
            extras[exp_id] = extra
        loaded = {r[0]: _experiment(r, values.get(r[0], []), extras.get(r[0])) for r in rows}
        self._finished.update((i, e) for i, e in loaded.items() if e.status != "running")
        return loaded

    def version(self) -> tuple[int, ...]:
        """A cheap fingerprint that changes whenever a row, sample or outcome is added."""
        with self._lock:
            db = self._connect()
            if db is None:
                return (0, 0, 0)
            try:
                row = db.execute(
                    "SELECT (SELECT COALESCE(MAX(id), 0) FROM experiments),"
                    " (SELECT COUNT(*) FROM outcomes), (SELECT COALESCE(MAX(id), 0) FROM samples)"
                ).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                return (0, 0, 0)
        return tuple(int(x) for x in row)

    def tags(self) -> list[str]:
        """Tags in the order they first appeared."""
        return list(dict.fromkeys(e.tag for e in self.experiments()))

    def of_tag(self, tag: str | None) -> list[Experiment]:
        experiments = self.experiments()
        return experiments if not tag else [e for e in experiments if e.tag == tag]

    # -- rows as `ratchet log --json` has them --

    def rows_json(self, tag: str | None, *, full: bool = True, since: int = 0) -> bytes:
        """The JSON list of rows (from id ``since`` on); a finished row is serialized once."""
        parts = []
        for e in self.of_tag(tag):
            if e.id < since:
                continue
            key = (e.id, full)
            cached = self._json.get(key)
            if cached is None:
                row = _row(e)
                if not full:
                    row = {k: row[k] for k in TABLE_FIELDS}
                cached = dumps(row)
                if e.status != "running":
                    self._json[key] = cached
            parts.append(cached)
        return b"[" + b",".join(parts) + b"]"

    # -- one experiment --

    def detail(self, exp_id: int) -> dict[str, Any] | None:
        """Row, judge's reason, lesson, samples against the incumbent's, curves and log tails."""
        experiments = self.experiments()
        exp = next((e for e in experiments if e.id == exp_id), None)
        if exp is None:
            return None
        goal, name = self.study.metric.goal, self.study.metric.name
        parent = _parent_experiment(exp, experiments)
        parent_metric = _parents(experiments).get(exp.parent or "")
        return {
            **_row(exp),
            "rationale": exp.rationale,
            "lesson": lesson(exp, parent_metric, metric_name=name, goal=goal),
            "parent_id": parent.id if parent else None,
            "incumbent": _samples_view(parent),
            "candidate": _samples_view(exp),
            "curves": self._curves(exp, parent),
            "logs": self.logs(exp.id),
            "diff": self.diff(exp),
        }

    def diff(self, exp: Experiment) -> str:
        """The change against the parent commit, through the git wrapper ("" without code)."""
        if not exp.commit or not exp.parent:
            return ""
        try:
            if self._repo is None:
                self._repo = Repo.discover(self.study.root)
            return self._repo.diff(exp.parent, exp.commit)
        except GitError as exc:  # e.g. the commits were garbage-collected: say so, serve the rest
            return f"(no diff: {exc})"

    def log_dir(self, exp_id: int) -> Path:
        """Where an experiment's logs are: always under ``.ratchet/logs``, whatever a row says."""
        return self.state / "logs" / str(int(exp_id))

    def log_files(self, exp_id: int) -> list[Path]:
        root = self.log_dir(exp_id)
        if not root.is_dir():
            return []
        files = [p for p in sorted(root.rglob("*.log")) if p.is_file() and not p.is_symlink()]
        return [p for p in files if p.resolve().is_relative_to(self.state)]

    def logs(self, exp_id: int, tail: int = TAIL_BYTES) -> list[dict[str, Any]]:
        """Each log's name, size and last ``tail`` bytes (run first, then evaluate, smoke…)."""
        root = self.log_dir(exp_id)
        order = {"run.log": 0, "evaluate.log": 1}
        files = sorted(self.log_files(exp_id), key=lambda p: (order.get(p.name, 2), str(p)))
        return [
            {"name": p.relative_to(root).as_posix(), "size": p.stat().st_size, **_tail(p, tail)}
            for p in files
        ]

    def log_text(self, exp_id: int, name: str) -> str | None:
        """One whole log (at most ``FULL_LOG_BYTES`` from its end), only if it is listed."""
        root = self.log_dir(exp_id)
        for p in self.log_files(exp_id):
            if p.relative_to(root).as_posix() == name:
                return _tail(p, FULL_LOG_BYTES)["text"]
        return None

    def _curves(self, exp: Experiment, parent: Experiment | None) -> dict[str, Any]:
        """Progress curves (the pruning picture): this run against its incumbent's."""
        mine, theirs = self._progress(exp.id), self._progress(parent.id) if parent else []
        key = curve_key(mine + theirs, self.study.metric.name, self.study.prune.key)
        if key is None:
            return {"key": None, "candidate": [], "incumbent": []}

        def points(curve: list[Any]) -> list[list[float]]:
            return [[p.progress, p.values[key]] for p in curve if _ok(p.values.get(key))]

        return {"key": key, "candidate": points(mine), "incumbent": points(theirs)}

    def _progress(self, exp_id: int, limit: int = CURVE_BYTES) -> list[Any]:
        """The progress lines of the run log's last ``limit`` bytes."""
        path = self.log_dir(exp_id) / "run.log"
        if not path.is_file():
            return []
        return parse_output(_tail(path, limit)["text"], self.study.metric.name).progress

    # -- live --

    def running(self, tag: str | None = None, tail_lines: int = 30) -> list[dict[str, Any]]:
        """Experiments without an outcome: elapsed time, latest progress, log tails."""
        now = time.time()
        out = []
        for e in self.of_tag(tag):
            if e.status != "running":
                continue
            progress = self._progress(e.id, LIVE_BYTES)
            logs = self.logs(e.id, tail=4_000)
            for log in logs:
                log["text"] = "\n".join(log["text"].splitlines()[-tail_lines:])
            out.append(
                {
                    "id": e.id,
                    "tag": e.tag,
                    "description": e.description,
                    "elapsed_s": round(now - e.created_at, 1),
                    "samples": e.samples,
                    "progress": progress[-1].progress if progress else None,
                    "progress_values": progress[-1].values if progress else {},
                    "logs": logs,
                }
            )
        return out

    def runner_pid(self, tag: str) -> int | None:
        """The pid written in the tag's lock file if that process lives (no lock is taken)."""
        path = self.state / "locks" / f"{tag}.lock"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not text.isdigit():
            return None
        try:
            os.kill(int(text), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return int(text)


# --- pure views over experiments ------------------------------------------------------


def overview(study: Study, experiments: list[Experiment], now: float) -> dict[str, Any]:
    """The overview's figures for one tag's experiments (or all)."""
    goal = study.metric.goal
    summary = summarize(experiments, goal)
    kept = [e for e in experiments if e.status in ("baseline", "keep")]
    incumbent = kept[-1] if kept else None
    by_proposer: dict[str, list[Experiment]] = {}
    for e in experiments:
        name = e.meta.get("proposer") or ("(baseline)" if e.status == "baseline" else "unknown")
        by_proposer.setdefault(str(name), []).append(e)
    return {
        "study": study.name,
        "metric": study.metric.name,
        "goal": goal,
        "total": summary.total,
        "counts": summary.counts,
        "baseline": _brief(summary.baseline),
        "best": _brief(summary.best),
        "incumbent": _brief(incumbent),
        "improvement_pct": summary.improvement_pct,
        "keeps": summary.keeps,
        "after_baseline": summary.after_baseline,
        "keep_rate": summary.keep_rate,
        "per_hour": _per_hour(experiments, now),
        "failed_s": round(sum(e.duration_s for e in experiments if e.status in FAILED), 3),
        "budget": _budget_lines(experiments),
        "proposers": [_spend(study, name, group) for name, group in sorted(by_proposer.items())],
        "running": [_brief(e) for e in experiments if e.status == "running"],
    }


def _brief(e: Experiment | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"id": e.id, "metric": e.metric, "description": e.description, "status": e.status}


def _per_hour(experiments: Sequence[Experiment], now: float) -> float | None:
    """Finished experiments per hour of wall time from the first start to the last end."""
    done = [e for e in experiments if e.status != "running"]
    if not done:
        return None
    start = min(e.created_at for e in experiments)
    end = max(e.created_at + e.duration_s for e in done)
    if any(e.status == "running" for e in experiments):
        end = max(end, now)
    hours = (end - start) / 3600
    return len(done) / hours if hours > 0 else None


def _spend(study: Study, name: str, group: list[Experiment]) -> dict[str, Any]:
    """One proposer's tokens and cost, with `ratchet status`'s line for it."""
    return {
        "proposer": name,
        "experiments": len(group),
        "input_tokens": sum(e.usage.input_tokens for e in group),
        "output_tokens": sum(e.usage.output_tokens for e in group),
        "cost_usd": round(sum(e.usage.cost_usd for e in group), 6),
        "line": _usage_line(study, group),
    }


def chart(experiments: list[Experiment], goal: str) -> dict[str, Any]:
    """progress.png's data: x = experiment number, points by kind, the running-best step line.

    ``kind`` per point: ``kept`` (baseline and keeps: green, labelled), ``other``
    (measured but not kept: grey), ``off`` (measured, outside the frontier's
    range: pinned to the edge), ``failed`` (no metric: a red cross at the
    bottom), ``pruned`` (stopped early, marked whether or not it has a metric),
    ``remeasure`` and ``running`` (not drawn; hover still names them).
    """
    frontier = _frontier(experiments)
    values = [float(e.metric) for e in frontier]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 100
    lo, hi = _y_range(values, log) if values else (None, None)
    kinds, best, running = [], [], None
    for e in experiments:
        kinds.append(_kind(e, lo, hi))
        if e.status in ("baseline", "keep") and e.metric is not None:
            metric = float(e.metric)
            running = metric if running is None or _better(metric, running, goal) else running
        best.append(running)
    return {
        "id": [e.id for e in experiments],
        "status": [e.status for e in experiments],
        "metric": [_finite(e.metric) for e in experiments],
        "kind": kinds,
        "best": best,
        "label": [
            _short(e.description) if k == "kept" else ""
            for e, k in zip(experiments, kinds, strict=True)
        ],
        "description": [e.description[:200] for e in experiments],
        "range": [lo, hi],
        "log": log,
        "goal": goal,
    }


def _kind(e: Experiment, lo: float | None, hi: float | None) -> str:
    if e.status == "pruned":
        return "pruned"
    if e.status == "running":
        return "running"  # not a failure yet: no point until it has an outcome
    if e.status == "remeasure":
        return "remeasure"  # the incumbent measured again: not a point of its own
    if e.metric is None or not math.isfinite(e.metric):
        return "failed"
    if e.status in ("baseline", "keep"):
        return "kept"
    if lo is not None and hi is not None and not lo <= e.metric <= hi:
        return "off"
    return "other"


def lineage(experiments: list[Experiment]) -> list[dict[str, Any]]:
    """Each experiment with the id of the experiment whose commit it was built on."""
    owner: dict[str, int] = {}
    nodes = []
    for e in experiments:
        nodes.append(
            {
                "id": e.id,
                "parent_id": owner.get(e.parent or ""),
                "status": e.status,
                "metric": _finite(e.metric),
                "tag": e.tag,
                "description": e.description[:200],
            }
        )
        if e.commit and e.status in ("baseline", "keep") and e.commit not in owner:
            owner[e.commit] = e.id
    return nodes


def _parent_experiment(exp: Experiment, experiments: Iterable[Experiment]) -> Experiment | None:
    """The baseline or keep whose commit ``exp`` was built on (the incumbent it faced)."""
    found = None
    for e in experiments:
        if e.id >= exp.id and found is not None:
            break
        if e.commit == exp.parent and e.status in ("baseline", "keep", "remeasure"):
            found = found if found and found.status != "remeasure" else e
    return found


def _samples_view(e: Experiment | None) -> dict[str, Any] | None:
    """Samples with their mean and spread (the noise band is mean ± 2 spread)."""
    if e is None:
        return None
    values = [v for v in e.samples if math.isfinite(v)]
    return {
        "id": e.id,
        "samples": values,
        "mean": fmean(values) if values else None,
        "spread": spread(values) if len(values) > 1 else 0.0,
    }


def _tail(path: Path, limit: int) -> dict[str, Any]:
    """The last ``limit`` bytes of a file, decoded, starting at a line boundary."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - limit))
        data = handle.read(limit)
    cut = size > limit
    if cut and b"\n" in data:
        data = data[data.index(b"\n") + 1 :]
    return {"text": data.decode("utf-8", errors="replace"), "truncated": cut}


def _ok(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such a number is sent as null."""
    return value if value is None or math.isfinite(value) else None


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """Strict JSON (browsers reject NaN): non-finite numbers become null."""
    try:
        return json.dumps(value, allow_nan=False, default=str).encode()
    except ValueError:
        return json.dumps(_clean(value), allow_nan=False, default=str).encode()
