"""The read model: what ``status``, ``log``, ``report`` and the dashboard show, computed once.

Every reader opens the ledger read-only (``open_read``), so looking never
changes what is looked at, and a figure means the same wherever it is shown:

- ``rows`` / ``row``: one JSON-able dict per experiment, the objects of
  ``ratchet log --json`` (oldest first; ``metric`` is None where none was measured);
- ``overview``: the figures of ``ratchet status`` for a list of experiments
  (one tag's, or all): counts, baseline, incumbent (``models.incumbent``, the one
  "best"), its change, where the budget went, what rejecting and pruning saved,
  and what the proposer spent;
- ``overviews``: one ``Overview`` per tag, for the dashboard;
- ``detail``: one experiment's row with its rationale and the names of its logs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from ..errors import ConfigError
from ..models import FAILED, JUDGED, Experiment, incumbent
from .journal import confirmed
from .ledger import Ledger

__all__ = [
    "LEDGER_FILE",
    "Overview",
    "open_read",
    "experiments",
    "row",
    "rows",
    "overview",
    "overviews",
    "detail",
    "change_pct",
]

LEDGER_FILE = Path(".ratchet") / "ledger.sqlite"


def open_read(study_root: Path) -> Ledger:
    """The study's ledger, read-only; a clear sentence when there is none yet."""
    path = Path(study_root) / LEDGER_FILE
    if not path.exists():
        raise ConfigError(f"{study_root} has no ledger yet — run `ratchet run {study_root}` first")
    return Ledger(path, read_only=True)


def experiments(study_root: Path, tag: str | None = None) -> list[Experiment]:
    """Every experiment (of ``tag``, or of all tags), oldest first, from a read-only open."""
    ledger = open_read(study_root)
    try:
        return ledger.experiments(tag)
    finally:
        ledger.close()


def row(e: Experiment) -> dict[str, Any]:
    """One ``ratchet log --json`` object."""
    return {
        "id": e.id,
        "tag": e.tag,
        "status": e.status,
        "metric": e.metric,
        "samples": e.samples,
        "commit": e.commit,
        "parent": e.parent,
        "description": e.description,
        "reason": e.reason,
        "confirmed": confirmed(e),
        "duration_s": round(e.duration_s, 3),
        "created_at": e.created_at,
        "extras": e.extras,
        "meta": e.meta,
        "input_tokens": e.usage.input_tokens,
        "output_tokens": e.usage.output_tokens,
        "cost_usd": round(e.usage.cost_usd, 6),
        "budget_s": e.budget_s,
        "worker": e.worker,
        "host": e.host,
        "proposer": e.proposer,
        "void": e.void,  # why a keep was invalidated (`ratchet invalidate`), else null
    }


def rows(exps: list[Experiment]) -> list[dict[str, Any]]:
    return [row(e) for e in exps]


def detail(ledger: Ledger, exp_id: int) -> dict[str, Any]:
    """One experiment: its log row, rationale, log directory and log files (relative)."""
    e = ledger.get(exp_id)
    logs = Path(e.log_dir) if e.log_dir else None
    names = sorted(p.relative_to(logs).as_posix() for p in logs.rglob("*.log")) if logs else []
    return {**row(e), "rationale": e.rationale, "log_dir": e.log_dir, "logs": names}


def change_pct(base: float | None, best: float | None) -> float | None:
    """The incumbent against the baseline in percent of the metric (signed, as measured)."""
    if base is None or best is None or base == 0:
        return None
    return (best - base) / abs(base) * 100


@dataclass(frozen=True)
class Overview:
    """The figures of one set of experiments (a tag, or the whole study)."""

    counts: dict[str, int]
    baseline: Experiment | None
    incumbent: Experiment | None
    running: list[Experiment]
    failed_s: float  # spent on candidates that crashed, timed out or were pruned
    rejected_early: int  # proposals refused before running (not proposer failures)
    saved_rejecting_s: float | None  # estimates from median durations; None: nothing judged
    pruned: int
    saved_pruning_s: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def change(self) -> float | None:
        """The incumbent's metric against the baseline's, in percent (signed as measured)."""
        base = self.baseline.metric if self.baseline else None
        return change_pct(base, self.incumbent.metric if self.incumbent else None)


def overview(exps: list[Experiment]) -> Overview:
    """What ``ratchet status`` shows about ``exps``.

    Saved by rejecting: proposals refused before they ran (verify, dedupe; not
    proposer failures) × the median duration of a judged candidate (its
    samples included). Saved by pruning: per pruned experiment, the median
    duration of one sample × (its samples + 1) minus what it ran. Both are
    estimates of what a full run would have cost.
    """
    early = [e for e in exps if e.status == "rejected" and e.duration_s == 0]
    early = [e for e in early if not e.reason.startswith("proposal:")]
    pruned = [e for e in exps if e.status == "pruned"]
    judged = [e for e in exps if e.status in JUDGED]
    measured = judged or [e for e in exps if e.status in ("baseline", "remeasure")]
    saved_rejecting = saved_pruning = None
    if measured:
        run = median(e.duration_s for e in measured)
        per_sample = median(e.duration_s / max(1, len(e.samples)) for e in measured)
        saved_rejecting = len(early) * run
        saved_pruning = sum(
            max(0.0, per_sample * (len(e.samples) + 1) - e.duration_s) for e in pruned
        )
    return Overview(
        counts=dict(Counter(e.status for e in exps)),
        baseline=next((e for e in exps if e.status == "baseline"), None),
        incumbent=incumbent(exps),
        running=[e for e in exps if e.status == "running"],
        failed_s=sum(e.duration_s for e in exps if e.status in FAILED),
        rejected_early=len(early),
        saved_rejecting_s=saved_rejecting,
        pruned=len(pruned),
        saved_pruning_s=saved_pruning,
        input_tokens=sum(e.usage.input_tokens for e in exps),
        output_tokens=sum(e.usage.output_tokens for e in exps),
        cost_usd=sum(e.usage.cost_usd for e in exps),
    )


def overviews(exps: list[Experiment]) -> dict[str, Overview]:
    """One ``Overview`` per tag, tags in the order they first appeared."""
    tags: dict[str, list[Experiment]] = {}
    for e in exps:
        tags.setdefault(e.tag, []).append(e)
    return {tag: overview(items) for tag, items in tags.items()}
