"""Measuring one commit until its status is known: how many samples, and what they say.

``loop.py`` decides what to measure and records the result; this module takes
the samples (the one place a sample is run and stored), asks the judge, and
returns an ``Outcome``: status, metric (the mean of the samples), reason and
seconds spent.

- Which protocol: a judge named ``strict`` decides on one sample, so the loop
  takes one sample of everything and never re-measures (the original
  autoresearch rule). Any other judge gets the noise-aware protocol below.
- Baseline: ``[decision] baseline_samples`` samples (seeds 0, 1, …). A
  deterministic study does not pay for repeats: when the first two samples
  are identical, sampling stops there (zero spread).
- The incumbent's samples are every sample of its commit: its baseline or
  keep row and the later re-measurements of the same commit. In a
  deterministic study a kept commit has one sample (the judge decided on it);
  its value is passed twice, so the judge sees the zero spread it needs to
  decide the next candidate on one sample too.
- Re-measurement: after ``[decision] remeasure_every`` candidates that ran
  (discard, crash, timeout, pruned, unconfirmed; rejected ones cost nothing)
  since the incumbent was last measured, it is measured again once, with a
  new seed, as a ``remeasure`` row, to catch drift (a warmer GPU, a busier
  machine). Skipped for a deterministic study (the baseline's samples had
  zero spread): its re-measurement could only repeat the same number.
- Top-up: while the judge asks for more samples of a candidate, the
  incumbent is measured alongside it (``needs_top_up``; a ``remeasure`` row
  each, taken by the ``top_up`` callback the loop passes), so that the two
  sides have about as many samples each. Never for a deterministic study.
- Early stopping: with ``[prune] enabled``, a candidate's runs are watched by a
  ``Pruner`` against the incumbent's progress curve, which is read back from
  the incumbent's own ``run.log`` (the log of its first sample; parsed once
  and cached). No curve (no progress lines, or the log is gone): no pruning.
  The baseline and re-measurements are never watched.
- Confirmation: see ``confirm``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING

from ..decide.judge import Judge, Verdict, noise
from ..decide.prune import Pruner
from ..execute.phases import Executor, Measurement
from ..metrics import MetricParser, ProgressPoint
from ..models import MEASURES_COMMIT, RAN, Experiment, better
from ..store.journal import CONFIRM_METRIC, CONFIRMED
from ..study import Study

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = [
    "Outcome",
    "measure_baseline",
    "measure_candidate",
    "remeasure",
    "Watch",
    "single_sample",
    "baseline_complete",
    "incumbent_samples",
    "deterministic",
    "remeasure_due",
    "needs_top_up",
    "watcher",
    "incumbent_curve",
    "sample",
    "confirm",
    "confirm_reference",
]

Watch = Callable[[ProgressPoint], "str | None"]



@dataclass(frozen=True)
class Outcome:
    """How a measurement ended: what the loop records as the experiment's outcome."""

    status: str
    metric: float | None
    reason: str
    seconds: float = 0.0


def measure_baseline(ws: Workspace, executor: Executor, judge: Judge, exp_id: int) -> Outcome:
    """``baseline`` with the mean of its samples, or the failure of the first bad sample."""
    samples: list[float] = []
    seconds = 0.0
    while not samples or not baseline_complete(samples, ws.study, judge):
        m = sample(ws, executor, exp_id, seed=len(samples))
        seconds += m.duration_s
        if m.status != "ok" or m.metric is None:
            seed = f"seed {len(samples)}: " if samples else ""
            return Outcome(m.status, None, f"{seed}{m.reason}", seconds)
        samples.append(m.metric)
    reason = f"{len(samples)} samples, std {noise(samples):.3g}" if len(samples) > 1 else m.reason
    if ws.study.confirm is not None:
        ok, why, spent = confirm(ws, executor, judge, exp_id, None, m.extras)
        seconds += spent
        if not ok:
            return Outcome("crash", None, why, seconds)
        reason = "; ".join(filter(None, (reason, why)))
    return Outcome("baseline", fmean(samples), reason, seconds)


def remeasure(ws: Workspace, executor: Executor, exp_id: int, current: Experiment) -> Outcome:
    """One more sample of the incumbent, with a new seed; never pruned, never judged."""
    before = incumbent_samples(ws.experiments(), current)
    m = sample(ws, executor, exp_id, seed=len(before))
    reason = f"{m.status}: {m.reason}"
    if m.metric is not None and before:
        reason = f"earlier samples: mean {fmean(before):.6g} of {len(before)}"
    return Outcome("remeasure", m.metric, reason, m.duration_s)


def measure_candidate(
    ws: Workspace,
    executor: Executor,
    judge: Judge,
    exp_id: int,
    parent: Experiment,
    diff: dict[str, int],
    top_up: Callable[[], float | None] | None = None,
) -> Outcome:
    """Sample until the judge decides (``more`` asks again), then confirm a keep.

    ``top_up`` measures the incumbent once more (a ``remeasure`` row) and
    returns its value: while the judge asks for more, the incumbent is kept at
    least as well measured as the candidate (see ``needs_top_up``).
    """
    history = ws.experiments()
    reference = incumbent_samples(history, parent) or [parent.metric or 0.0]
    exact = deterministic(history)
    if exact and len(reference) == 1:
        reference = reference * 2  # known exactly: what the judge needs to see zero spread
    pruner = watcher(ws.study, parent, reference)
    samples: list[float] = []
    seconds = 0.0
    while True:
        m = sample(ws, executor, exp_id, len(samples), pruner() if pruner else None)
        seconds += m.duration_s
        if m.status != "ok" or m.metric is None:
            return Outcome(m.status, None, m.reason, seconds)
        samples.append(m.metric)
        verdict = judge.decide(
            samples,
            reference,
            ws.study.metric.goal,
            lines_added=diff.get("added", 0),
            lines_removed=diff.get("removed", 0),
        )
        if verdict.decision != "more" or len(samples) >= ws.study.decision.max_samples:
            break
        if top_up is not None and not exact and needs_top_up(samples, reference):
            value = top_up()
            if value is not None:
                reference.append(value)
    status, reason = _decided(verdict, len(samples))
    if status == "keep" and ws.study.confirm is not None:
        again = confirm_reference(parent, reference)
        ok, why, spent = confirm(ws, executor, judge, exp_id, again, m.extras)
        seconds += spent
        reason = f"{reason}; {why}"
        status = "unconfirmed" if not ok and ws.study.confirm.revert else status
    return Outcome(status, fmean(samples), reason, seconds)


def needs_top_up(samples: Sequence[float], incumbent: Sequence[float]) -> bool:
    """The incumbent would have fewer samples than the candidate's next count.

    A comparison is only as sure as its worse-measured side: with 3 incumbent
    samples no number of candidate samples lets a 95 % test keep 80 % of the
    one-sigma gains (the incumbent's own error stays at 0.58 sigma). Equal
    counts buy the most certainty per run, and the extra incumbent samples
    serve every later candidate too.
    """
    return len(incumbent) < len(samples) + 1


def _decided(verdict: Verdict, n: int) -> tuple[str, str]:
    """A judge still asking for more after ``max_samples`` has not seen an improvement."""
    if verdict.decision == "more":
        return "discard", f"undecided after {n} samples: {verdict.reason}"
    return ("keep" if verdict.decision == "keep" else "discard"), verdict.reason


def single_sample(judge: Judge) -> bool:
    """The strict rule decides on one sample: no repeats, no re-measurements."""
    return judge.name == "strict"


def baseline_complete(samples: Sequence[float], study: Study, judge: Judge) -> bool:
    """Enough baseline samples: one for strict, two equal ones, or ``baseline_samples``."""
    if single_sample(judge) or len(samples) >= study.decision.baseline_samples:
        return True
    return len(samples) == 2 and samples[0] == samples[1]


def incumbent_samples(history: Sequence[Experiment], incumbent: Experiment) -> list[float]:
    """Every sample of the incumbent's commit, re-measurements included."""
    return [
        value
        for e in history
        if e.commit == incumbent.commit and e.status in MEASURES_COMMIT
        for value in e.samples
    ]


def deterministic(history: Sequence[Experiment]) -> bool:
    """The baseline was sampled more than once and never moved."""
    base = next((e for e in history if e.status == "baseline"), None)
    return base is not None and len(base.samples) >= 2 and len(set(base.samples)) == 1


def remeasure_due(history: Sequence[Experiment], study: Study, judge: Judge) -> bool:
    """Time to measure the incumbent again (noise-aware studies that are not deterministic)."""
    every = study.decision.remeasure_every
    if single_sample(judge) or every == 0 or deterministic(history):
        return False
    ran = 0
    for e in reversed(history):
        if e.status in MEASURES_COMMIT:
            break
        ran += e.status in RAN
    return ran >= every


def watcher(
    study: Study, incumbent: Experiment, reference: Sequence[float]
) -> Callable[[], Watch] | None:
    """A factory of fresh pruners (one per run), or None when nothing can be pruned."""
    if not study.prune.enabled:
        return None
    curve = incumbent_curve(incumbent, study.metric.name)
    if not curve:
        return None
    spread = noise(reference)

    def watch() -> Watch:
        pruner = Pruner(
            curve,
            metric_name=study.metric.name,
            goal=study.metric.goal,
            noise=spread,
            min_progress=study.prune.min_progress,
            key=study.prune.key,
        )
        return pruner.watch

    return watch


def incumbent_curve(incumbent: Experiment, metric_name: str) -> list[ProgressPoint]:
    """The progress points of the incumbent's first run, read back from its run.log."""
    log = Path(incumbent.log_dir) / "run.log" if incumbent.log_dir else None
    if log is None or not log.is_file():
        return []
    stat = log.stat()
    return list(_curve(str(log), metric_name, stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=8)
def _curve(path: str, metric_name: str, size: int, mtime: int) -> tuple[ProgressPoint, ...]:
    """Parsed once per log (size and mtime in the key: a changed file is parsed again)."""
    parser = MetricParser(metric_name)
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            parser.feed(line)
    return tuple(parser.result().progress)


def sample(
    ws: Workspace, executor: Executor, exp_id: int, seed: int, watch: Watch | None = None
) -> Measurement:
    """Measure once with ``seed`` and record the sample; Ctrl-C during it stops the loop."""
    m = executor.measure(ws.candidate(exp_id, seed), watch=watch)
    ws.ledger.add_sample(
        exp_id,
        seed=seed,
        value=m.metric,
        extras=m.extras,
        status="ok" if m.status == "ok" else m.status,
        reason=m.reason if not m.tail else f"{m.reason}\n{m.tail}",
        duration_s=m.duration_s,
    )
    if m.status == "interrupted":
        raise KeyboardInterrupt
    return m


def confirm(
    ws: Workspace,
    executor: Executor,
    judge: Judge,
    exp_id: int,
    reference: Sequence[float] | None,
    extras: dict[str, float],
) -> tuple[bool, str, float]:
    """Run ``[confirm]`` on the measured commit: (confirmed, reason, seconds).

    The confirm command prints the study's metric. Its value is compared with
    the incumbent's own confirm value when it has one (every baseline gets one
    when ``[confirm]`` is set), else with the incumbent's samples: the judge
    decides on that one sample; when it cannot tell (``more``), the value must
    be strictly better than the reference's mean. With no reference (the
    baseline), a metric is enough. The result is recorded as a sample with
    status ``confirm`` and no value, whose extras are the run's extras plus
    ``ratchet.confirmed`` (1.0 / 0.0) and ``ratchet.confirm`` (the value), so
    it shows in ``ratchet log`` and never joins the experiment's samples.
    """
    m = executor.confirm(ws.candidate(exp_id, 0))
    ok, why = _verdict(judge, m, reference, ws.study)
    flags = {CONFIRMED: float(ok)}
    if m.metric is not None:
        flags[CONFIRM_METRIC] = m.metric
    ws.ledger.add_sample(
        exp_id,
        seed=0,
        value=None,
        extras={**extras, **flags},
        status="confirm",
        reason=why if not m.tail or m.status == "ok" else f"{why}\n{m.tail}",
        duration_s=m.duration_s,
    )
    if m.status == "interrupted":
        raise KeyboardInterrupt
    return ok, why, m.duration_s


def confirm_reference(incumbent: Experiment, samples: Sequence[float]) -> list[float]:
    """What a confirm value is compared with: the incumbent's confirm value, else its samples."""
    value = incumbent.extras.get(CONFIRM_METRIC)
    return [value] if value is not None else list(samples)


def _verdict(
    judge: Judge, m: Measurement, reference: Sequence[float] | None, study: Study
) -> tuple[bool, str]:
    name, goal = study.metric.name, study.metric.goal
    if m.status != "ok" or m.metric is None:
        return False, f"confirm {m.status}: {m.reason}"
    if not reference:
        return True, f"confirm {name} {m.metric:.6g}"
    decision = judge.decide([m.metric], reference, goal).decision
    if decision == "more":
        decision = "keep" if better(m.metric, fmean(reference), goal) else "discard"
    ok = decision == "keep"
    word = "confirmed" if ok else "not confirmed"
    return ok, f"{word}: {name} {m.metric:.6g} vs {fmean(reference):.6g} by [confirm]"
