"""One experiment, end to end: a ``Trial``. What ``ratchet run`` and ``ratchet try`` share.

    verify + dedupe ─▶ commit ─▶ record (running) ─▶ smoke ─▶ sample + judge ─▶ [confirm]
      ─▶ finish (ledger, then refs, then results.tsv and the journal)

A ``Bench`` is what every trial of one run shares: the workspace, the
executor, the judge, the observer, where trials run (worker, host) and the
history, read once per experiment (``refresh``) and extended in memory as
trials finish. A ``Trial`` is one ledger row: it is started (written as
``running`` before anything runs, with its budget, worker, host and proposer),
takes samples (each recorded as it ends), and is finished with exactly one
outcome: ledger first, then refs, so after a crash the ledger is the truth.
How many samples, top-ups and re-measurements follow ``decide.sampling``; this
module only carries them out.

Pruning: with ``[prune] enabled``, a candidate's runs are watched by a
``Pruner`` against the incumbent's progress curve, read back from the
incumbent's own ``run.log`` (its first sample; parsed once and cached). No
curve (no progress lines, or the log is gone): no pruning. The baseline and
re-measurements are never watched.
"""

from __future__ import annotations

import socket
from bisect import insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import fmean
from typing import Any

from ..constraints import PREFIX, parse_constraints, violation
from ..decide import sampling as protocol
from ..decide.dedupe import normalized_patch, patch_meta, program_sha
from ..decide.judge import Judge, Verdict, noise
from ..decide.prune import Pruner
from ..decide.sampling import Outcome
from ..errors import ExperimentError, ProposalError, ProposalUnusable
from ..execute.base import BaseExecutor, Watch
from ..execute.phases import Candidate, Measurement
from ..metrics import MetricParser, ProgressPoint
from ..models import Experiment, Proposal, Usage, incumbent
from ..observer import Observer
from ..policies.base import Choice
from ..store.journal import write_journal
from ..study import Study
from .advice import baseline_advice
from .verify import dedupe, diff_stats, verify
from .workspace import Workspace

__all__ = [
    "BaselineFailed",
    "Bench",
    "Trial",
    "baseline",
    "remeasure_incumbent",
    "run_proposal",
    "unproposed",
]


class BaselineFailed(ExperimentError):
    """The unmodified study did not produce a metric: nothing can be compared to it."""


@dataclass
class Bench:
    """What every trial of one run shares (see the module's notes)."""

    ws: Workspace
    executor: BaseExecutor
    judge: Judge
    observer: Observer
    proposer: str = ""  # recorded on proposals; measurements (baseline, re-measure) have none
    worker: str = "w0"
    host: str = field(default_factory=socket.gethostname)
    history: list[Experiment] = field(default_factory=list)  # the whole study, every tag

    @property
    def study(self) -> Study:
        return self.ws.study

    def refresh(self) -> list[Experiment]:
        """Read the history from the ledger: once per experiment (other tags may have moved)."""
        self.history = self.ws.ledger.experiments()
        return self.history

    def mine(self) -> list[Experiment]:
        """This tag's experiments, oldest first."""
        return [e for e in self.history if e.tag == self.ws.tag]


class Trial:
    """One experiment's ledger row: started, sampled, finished exactly once."""

    def __init__(self, bench: Bench, exp_id: int, commit: str | None) -> None:
        self.bench = bench
        self.id = exp_id
        self.commit = commit
        self.island: int | None = None  # whose island branch a keep also moves

    @classmethod
    def start(
        cls,
        bench: Bench,
        *,
        parent: str | None,
        commit: str | None,
        description: str,
        proposal: Proposal | None = None,
        meta: dict[str, Any] | None = None,
        usage: Usage | None = None,
        proposed: bool = False,
        choice: Choice | None = None,
    ) -> Trial:
        """The ``running`` row, written before anything runs.

        ``proposed``: the row is the proposer's (a proposal, or its failure), so it
        records the proposer's name; a measurement (baseline, re-measure) has none.
        ``choice``: the search policy's answer it was built from (its lineage:
        parent experiment, island, kind of node), recorded with the row.
        """
        ws = bench.ws
        exp_id = ws.ledger.start(
            tag=ws.tag,
            parent=parent,
            commit=commit,
            description=description,
            rationale=proposal.rationale if proposal else "",
            meta=meta,
            usage=proposal.usage if proposal else usage,
            log_dir=ws.log_dir_template,
            budget_s=bench.executor.budget,
            worker=bench.worker,
            host=bench.host,
            proposer=bench.proposer if proposed else "",
            parent_id=choice.parent.id if choice else None,
            island=choice.island if choice else None,
            node_kind=choice.kind if choice else "",
        )
        trial = cls(bench, exp_id, commit)
        trial.island = choice.island if choice else None
        return trial

    def candidate(self, seed: int) -> Candidate:
        plain = self.bench.ws.candidate(self.id, seed)
        return Candidate(plain.study_dir, plain.log_dir, seed, self.commit or "", self.id)

    def sample(self, seed: int, watch: Watch | None = None) -> Measurement:
        """Measure once with ``seed`` and record the sample; Ctrl-C during it stops the loop."""
        m = self.bench.executor.measure(self.candidate(seed), watch=watch)
        self.bench.ws.ledger.add_sample(
            self.id,
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
        self, reference: Sequence[float] | None, extras: dict[str, float]
    ) -> tuple[bool, str, float]:
        """Run ``[confirm]`` on the measured commit: (confirmed, reason, seconds).

        Recorded as a sample with status ``confirm`` and no value, whose extras
        are the run's extras plus ``ratchet.confirmed`` (1.0 / 0.0) and
        ``ratchet.confirm`` (the value), so it shows in ``ratchet log`` and
        never joins the experiment's samples.
        """
        bench = self.bench
        m = bench.executor.confirm(self.candidate(0))
        ok, why = protocol.confirm_verdict(
            bench.judge, m.status, m.metric, m.reason, reference, bench.study
        )
        flags = {protocol.CONFIRMED: float(ok)}
        if m.metric is not None:
            flags[protocol.CONFIRM_METRIC] = m.metric
        bench.ws.ledger.add_sample(
            self.id,
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

    def finish(self, outcome: Outcome) -> Experiment:
        """Ledger first, then refs: after a crash in between, the ledger is the truth."""
        bench, ws = self.bench, self.bench.ws
        ws.ledger.finish(
            self.id,
            status=outcome.status,
            metric=outcome.metric,
            reason=outcome.reason,
            duration_s=outcome.seconds,
        )
        ws.record_refs(self.id, self.commit, kept=outcome.status == "keep", island=self.island)
        ws.export()
        exp = ws.ledger.get(self.id)
        insort(bench.history, exp, key=lambda e: e.id)  # a top-up finishes before its candidate
        write_journal(
            ws.state_dir / "journal.md",
            bench.history,
            metric_name=bench.study.metric.name,
            goal=bench.study.metric.goal,
            title=bench.study.name,
            notes=ws.ledger.notes(),
        )
        bench.observer.experiment_finished(exp)
        return exp


# --- measurements that are not proposals ------------------------------------------------


def baseline(bench: Bench) -> Experiment:
    """Measure the unmodified code; a baseline that fails stops the run (exit 1)."""
    ws = bench.ws
    head = ws.repo.rev(ws.branch_ref) or ws.repo.head()
    ws.checkout(head)
    trial = Trial.start(bench, parent=None, commit=head, description="baseline")
    bench.observer.experiment_started(trial.id, "baseline")
    outcome = _measure_baseline(trial)
    exp = trial.finish(outcome)
    if outcome.status != "baseline":
        advice = baseline_advice(bench.study, outcome.status, outcome.reason, trial.id)
        raise BaselineFailed(
            f"the baseline (unmodified code) ended with {outcome.status}: {outcome.reason}"
            f" — {advice}"
        )
    return exp


def remeasure_incumbent(bench: Bench, current: Experiment | None = None) -> Experiment:
    """Measure the incumbent's commit (or ``current``'s) once more, as its own row."""
    current = current or incumbent(bench.mine())
    assert current is not None and current.commit is not None
    bench.ws.checkout(current.commit)
    description = f"re-measure incumbent #{current.id}"
    commit = current.commit
    trial = Trial.start(bench, parent=commit, commit=commit, description=description)
    bench.observer.experiment_started(trial.id, description)
    before = protocol.incumbent_samples(bench.mine(), current)
    m = trial.sample(seed=len(before))
    reason = f"{m.status}: {m.reason}"
    if m.metric is not None and before:
        reason = f"earlier samples: mean {fmean(before):.6g} of {len(before)}"
    return trial.finish(Outcome("remeasure", m.metric, reason, m.duration_s))


def _measure_baseline(trial: Trial) -> Outcome:
    """``baseline`` with the mean of its samples, or the failure of the first bad sample."""
    study, judge = trial.bench.study, trial.bench.judge
    samples: list[float] = []
    seconds = 0.0
    while not samples or not protocol.baseline_complete(samples, study, judge):
        m = trial.sample(seed=len(samples))
        seconds += m.duration_s
        if m.status != "ok" or m.metric is None:
            seed = f"seed {len(samples)}: " if samples else ""
            return Outcome(m.status, None, f"{seed}{m.reason}", seconds)
        samples.append(m.metric)
    reason = f"{len(samples)} samples, std {noise(samples):.3g}" if len(samples) > 1 else m.reason
    if study.confirm is not None:
        ok, why, spent = trial.confirm(None, m.extras)
        seconds += spent
        if not ok:
            return Outcome("crash", None, why, seconds)
        reason = "; ".join(filter(None, (reason, why)))
    return Outcome("baseline", fmean(samples), reason, seconds)


# --- proposals ----------------------------------------------------------------------------


def run_proposal(
    bench: Bench,
    parent: Experiment,
    base: str,
    files: dict[str, str],
    proposal: Proposal,
    choice: Choice | None = None,
) -> Experiment:
    """Verify, commit on ``base``, record, smoke, then sample and judge against ``parent``.

    ``ratchet run`` builds on the node its policy chose (``base`` is that node's
    commit, ``parent`` the policy's incumbent to beat, ``choice`` the lineage
    recorded); ``ratchet try`` builds on the user's HEAD and judges against the
    tag's incumbent.
    """
    ws = bench.ws
    patch = normalized_patch(files, proposal.edits)
    program = program_sha(files, proposal.edits)
    rejection = verify(proposal, ws.study, files) or dedupe(patch, bench.history, program)
    link = ws.symlinked(proposal) if rejection is None else None
    commit = ws.commit(base, proposal) if rejection is None and not link else None
    if commit:
        ws.check_candidate_pins()
    diff = diff_stats(files, proposal.edits)
    meta = {**proposal.meta, "diff": diff, **patch_meta(patch, program)}
    trial = Trial.start(
        bench, parent=base, commit=commit, description=proposal.description, proposal=proposal,
        meta=meta, proposed=True, choice=choice,
    )  # fmt: skip
    if rejection or link:
        reason = f"{rejection.stage}: {rejection.reason}" if rejection else f"{link} is a symlink"
        return trial.finish(Outcome("rejected", None, reason))
    bench.observer.experiment_started(trial.id, proposal.description)
    smoke = bench.executor.smoke(trial.candidate(0))
    if smoke is not None and smoke.status != "ok":
        status = "crash" if smoke.status in ("rejected", "pruned") else smoke.status
        return trial.finish(Outcome(status, None, f"smoke: {smoke.reason}", smoke.duration_s))
    return trial.finish(_measure_candidate(trial, parent, base, diff))


def _measure_candidate(
    trial: Trial, parent: Experiment, base: str, diff: dict[str, int]
) -> Outcome:
    """Sample until the judge decides (``_sample_until_decided``), then confirm a keep."""
    study = trial.bench.study
    reference = protocol.reference(trial.bench.mine(), parent)
    sampled = _sample_until_decided(trial, parent, base, diff, reference)
    if isinstance(sampled, Outcome):
        return sampled
    samples, verdict, m, seconds = sampled
    status, reason = protocol.decided(verdict, len(samples))
    broken = _broken_constraint(study, fmean(samples), m.extras) if status == "keep" else None
    if broken:
        reason = f"{PREFIX}{broken} (judged: {reason})"
        return Outcome("discard", fmean(samples), reason, seconds)
    if status == "keep" and study.confirm is not None:
        against = protocol.confirm_reference(parent, reference)
        ok, why, spent = trial.confirm(against, m.extras)
        seconds += spent
        reason = f"{reason}; {why}"
        status = "unconfirmed" if not ok and study.confirm.revert else status
    return Outcome(status, fmean(samples), reason, seconds)


def _sample_until_decided(
    trial: Trial, parent: Experiment, base: str, diff: dict[str, int], reference: list[float]
) -> Outcome | tuple[list[float], Verdict, Measurement, float]:
    """Carry out ``protocol.next_sample`` until the judge decides or ``max_samples``.

    An incumbent sample is a ``remeasure`` row of its own (``reference`` grows
    by it), after which the candidate's tree is checked out again. Interleaved,
    those taken in turn with the candidate's are passed to the judge as
    ``alongside``, once a pair is whole (``protocol.judge_now``); if one fails,
    the rest of this candidate is judged unpaired and without top-ups (an
    incumbent that cannot be measured now is not asked again and again).
    Returns the failed candidate sample's outcome, or (samples, verdict, last
    measurement, seconds).
    """
    bench = trial.bench
    study, judge = bench.study, bench.judge
    top_ups = not protocol.deterministic(bench.mine())  # a deterministic study needs none
    interleave = protocol.interleaved(study, judge)
    pruner = _watcher(study, parent, reference)
    samples: list[float] = []
    alongside: list[float] = []
    seconds = 0.0
    while True:
        turn = protocol.next_sample(
            samples, alongside, reference, interleave=interleave, exact=not top_ups
        )
        if turn == "incumbent":
            again = remeasure_incumbent(bench, parent)
            bench.ws.checkout(trial.commit or base)
            if again.metric is None:
                interleave = top_ups = False
            else:
                reference.append(again.metric)
                alongside.append(again.metric)
        else:
            m = trial.sample(len(samples), pruner() if pruner else None)
            seconds += m.duration_s
            if m.status != "ok" or m.metric is None:
                return Outcome(m.status, None, m.reason, seconds)
            samples.append(m.metric)
        if not protocol.judge_now(turn, samples, alongside, interleave=interleave):
            continue
        verdict = judge.decide(
            samples,
            reference,
            study.metric.goal,
            lines_added=diff.get("added", 0),
            lines_removed=diff.get("removed", 0),
            alongside=alongside if interleave else (),
        )
        if verdict.decision != "more" or len(samples) >= study.decision.max_samples:
            return samples, verdict, m, seconds


def _broken_constraint(study: Study, metric: float, extras: dict[str, float]) -> str | None:
    """Why a judged keep breaks ``[metric] constraints`` (on its last run's extras), if so."""
    if not study.metric.constraints:
        return None
    values = {**extras, study.metric.name: metric}
    return violation(parse_constraints(study.metric.constraints), values)


def unproposed(
    bench: Bench, parent: Experiment, exc: ProposalError, choice: Choice | None = None
) -> Experiment:
    """A proposer that failed still leaves a row: the reason is shown in the next prompt."""
    trial = Trial.start(
        bench,
        parent=parent.commit,
        commit=None,
        description="(no proposal)",
        meta={
            "proposer_failed": not isinstance(exc, ProposalUnusable),
            "unusable": isinstance(exc, ProposalUnusable),  # answered, but nothing applicable
        },
        usage=exc.usage,
        proposed=True,
        choice=choice,
    )
    return trial.finish(Outcome("rejected", None, f"proposal: {exc}"))


# --- pruning --------------------------------------------------------------------------------


def _watcher(
    study: Study, parent: Experiment, reference: Sequence[float]
) -> Callable[[], Watch] | None:
    """A factory of fresh pruners (one per run), or None when nothing can be pruned."""
    if not study.prune.enabled:
        return None
    curve = incumbent_curve(parent, study.metric.name)
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


def incumbent_curve(parent: Experiment, metric_name: str) -> list[ProgressPoint]:
    """The progress points of the incumbent's first run, read back from its run.log."""
    log = Path(parent.log_dir) / "run.log" if parent.log_dir else None
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
