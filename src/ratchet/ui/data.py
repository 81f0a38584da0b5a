"""Everything the dashboard reads, as plain dicts: the one data module of ``ratchet ui``.

Why a module of its own: the dashboard is a separate process that must never
slow down or endanger the loop's ledger. So it opens ``.ratchet/ledger.sqlite``
read-only (``file:…?mode=ro``; WAL lets it read while ``ratchet run`` writes),
never takes the tag's lock, and reads files only under the study's
``.ratchet/`` (logs) and through the git wrapper (diffs).

Figures mean what they mean elsewhere, by reading through the shared read
model ``store.queries``: rows are ``ratchet log --json``'s (``queries.row``),
counts, baseline, incumbent ("best"), change, failed time and spend come from
``queries.overview`` (as ``ratchet status`` has them), the budget and proposer
lines are ``queries.budget_lines`` / ``usage_line``, the lesson is the
journal's (``queries.lesson_of``), and the chart follows ``progress.png``
(its frontier, y range and labels from ``report``). The only figure defined
here is experiments per hour: finished experiments over the hours from the
first experiment's start to the last one's end.

A finished experiment never changes (the ledger is append-only): the read-only
``Ledger`` decodes it once, and its JSON is serialized once here; a request over
10,000 experiments then costs one id query plus the rows still running or new.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from ..decide.prune import curve_key
from ..decide.stats import spread
from ..errors import GitError, LedgerError
from ..git.repo import Repo
from ..metrics import parse_output
from ..models import KEPT, Experiment, better
from ..report import _frontier, _short, _y_range
from ..store import queries
from ..store.ledger import Ledger
from ..study import Study

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


class StudyData:
    """Read-only access to one study's ledger, logs and git objects; safe across threads."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.path = (study.root / queries.LEDGER_FILE).resolve()
        self.state = self.path.parent
        self._lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._json: dict[tuple[int, bool], bytes] = {}
        self._repo: Repo | None = None
        self._inode: tuple[int, int] | None = None

    # -- the ledger, read-only --

    def _open(self) -> Ledger | None:
        """The read-only ledger, opened once it exists (a study may not have run yet).

        A ledger moved aside or deleted (and perhaps made anew by the next
        ``ratchet run``) is noticed by its inode, and the old one forgotten.
        """
        try:
            stat = self.path.stat()
            inode: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except OSError:
            inode = None
        if self._ledger is not None and inode != self._inode:
            self._forget()
        if self._ledger is None and inode is not None:
            self._ledger = Ledger(self.path, read_only=True)
            self._inode = inode
        return self._ledger

    def _forget(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
        self._ledger, self._inode, self._json = None, None, {}

    def close(self) -> None:
        with self._lock:
            self._forget()

    def experiments(self) -> list[Experiment]:
        """Every experiment of the study, oldest first (finished ones decoded once)."""
        with self._lock:
            try:
                ledger = self._open()
                return ledger.experiments() if ledger else []
            except LedgerError as exc:  # created by `ratchet run` a moment ago: no tables yet
                if "no such table" not in str(exc):
                    raise
                self._forget()  # its columns are read again once the tables exist
                return []

    def version(self) -> tuple[int, ...]:
        """A cheap fingerprint that changes whenever a row, sample or outcome is added."""
        return fingerprint(self.experiments())

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
                row = queries.row(e)
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
        return {
            **queries.row(exp),
            "rationale": exp.rationale,
            "lesson": queries.lesson_of(exp, experiments, metric_name=name, goal=goal),
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
    """The overview's figures for one tag's experiments (or all), as ``ratchet status`` has them."""
    goal = study.metric.goal
    figures = queries.overview(experiments)
    by_proposer: dict[str, list[Experiment]] = {}
    for e in experiments:
        name = e.proposer or ("(baseline)" if e.status == "baseline" else "unknown")
        by_proposer.setdefault(name, []).append(e)
    return {
        "study": study.name,
        "metric": study.metric.name,
        "goal": goal,
        "total": figures.total,
        "counts": figures.counts,
        "baseline": _brief(figures.baseline),
        "best": _brief(figures.incumbent),
        "incumbent": _brief(figures.incumbent),
        "improvement_pct": figures.improvement(goal),
        "change_pct": figures.change,
        "keeps": figures.counts.get("keep", 0),
        "after_baseline": figures.after_baseline,
        "keep_rate": figures.keep_rate,
        "per_hour": _per_hour(experiments, now),
        "failed_s": round(figures.failed_s, 3),
        "budget": queries.budget_lines(figures),
        "proposers": [_spend(study, name, group) for name, group in sorted(by_proposer.items())],
        "running": [_brief(e) for e in figures.running],
    }


def fingerprint(experiments: Sequence[Experiment]) -> tuple[int, ...]:
    """Changes whenever a row is added, one finishes, or a running one gets a sample."""
    finished = sum(e.status != "running" for e in experiments)
    samples = sum(len(e.samples) for e in experiments if e.status == "running")
    return (experiments[-1].id if experiments else 0, finished, samples)


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
    spec = study.proposer
    figures = queries.overview(group)
    return {
        "proposer": name,
        "experiments": len(group),
        "input_tokens": sum(e.usage.input_tokens for e in group),
        "output_tokens": sum(e.usage.output_tokens for e in group),
        "cost_usd": round(sum(e.usage.cost_usd for e in group), 6),
        "line": queries.usage_line(
            figures, max_tokens=spec.max_total_tokens, max_cost_usd=spec.max_cost_usd
        ),
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
        if e.status in KEPT and e.metric is not None:
            metric = float(e.metric)
            running = metric if running is None or better(metric, running, goal) else running
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
