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

With N workers (``ratchet run --workers N``) every worker has its own
``Bench`` (its worktree, executor and name) made by ``Bench.for_worker``; they
share the history, the ledger, the repository, the lock and the incumbent
sampler. The lock (``Bench.cond``) makes one owner of the ledger and of git at
a time: a thread holds it all the time except while its executor runs a phase
(``Bench.unlocked``) or it waits, so ledger rows, refs and the in-memory
history change one trial at a time, in one process.

The concurrent keep rule: a candidate is judged against the measurements of
its own parent, the incumbent when it started. If the incumbent moved while it
ran (another worker's keep) and it beats its parent, it is not kept: its
change is re-applied on the new incumbent (a three-way merge of its commit,
``Repo.merge_onto``) and measured again as a new experiment, "rebase of #id",
whose parent is the new incumbent; the original is a ``discard`` whose reason
says so ("beat its parent #p but the incumbent moved to #q; rebased as #r"). A
merge conflict makes it a ``discard`` naming the conflicting files. So
``ratchet/<tag>`` only fast-forwards under greedy. The rule applies to
candidates built on and judged against the tag's incumbent (always under
greedy; under tree when it expands the incumbent); an island's candidates are
judged within their island, and other tree nodes against the best node, where
``workspace.carry`` already keeps every keep in the branch's history.

One incumbent sampler (``Sampler``) serves all workers: a re-measurement or
top-up of a commit already being measured by another worker is not started
again; the waiting worker reuses its sample.

Pruning: with ``[prune] enabled``, a candidate's runs are watched by a
``Pruner`` against the incumbent's progress curve, read back from the
incumbent's own ``run.log`` (its first sample; parsed once and cached). No
curve (no progress lines, or the log is gone): no pruning. The baseline and
re-measurements are never watched.
"""

from __future__ import annotations

import socket
import threading
from bisect import insort
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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
from ..safetext import printable
from ..store.journal import write_journal
from ..study import Study
from .advice import baseline_advice
from .verify import dedupe, diff_stats, verify
from .workspace import Workspace

__all__ = [
    "BaselineFailed",
    "Bench",
    "Sampler",
    "Trial",
    "baseline",
    "remeasure_incumbent",
    "run_proposal",
    "start_proposal",
    "measure_proposal",
    "unproposed",
]


MAX_REBASES = 2  # re-applications of one change on a newer incumbent (the keep rule)


class BaselineFailed(ExperimentError):
    """The unmodified study did not produce a metric: nothing can be compared to it."""


class Sampler:
    """The incumbent's re-measurements, shared by every worker (see the module's notes).

    ``flying`` holds the commits being measured again; a worker that needs the
    same commit measured waits for that measurement and shares its sample
    instead of starting its own.
    """

    def __init__(self) -> None:
        self.flying: set[str] = set()
        self._results: dict[str, list[float]] = {}  # what waiting workers receive

    def busy(self, commit: str | None) -> bool:
        return commit in self.flying

    def claim(self, commit: str | None) -> None:
        """Reserve ``commit``'s next measurement for a worker about to start it."""
        self.flying.add(commit or "")

    def remeasure(self, bench: Bench, target: Experiment, claimed: bool = False) -> list[float]:
        """Measure ``target``'s commit once more, or share the measurement in flight.

        Takes the bench's lock (``ratchet try`` does not hold it; a worker does);
        returns the new sample (none when it failed). ``claimed``: the caller
        reserved it (``claim``) and measures it.
        """
        with bench.cond:
            commit = target.commit or ""
            if commit in self.flying and not claimed:
                waiting = self._results.setdefault(commit, [])
                while commit in self.flying:
                    bench.cond.wait()
                return waiting[-1:] if waiting else []
            self.flying.add(commit)
            values: list[float] = []
            try:
                again = remeasure_incumbent(bench, target)
                values = [again.metric] if again.metric is not None else []
            finally:
                self.flying.discard(commit)
                waiting = self._results.pop(commit, None)
                if waiting is not None:
                    waiting.extend(values)
                bench.cond.notify_all()
            return values


def _loop_lock() -> threading.Condition:
    """The lock that makes one owner of the ledger and git at a time (see the module)."""
    return threading.Condition(threading.RLock())


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
    cond: threading.Condition = field(default_factory=_loop_lock)
    sampler: Sampler = field(default_factory=Sampler)

    @property
    def study(self) -> Study:
        return self.ws.study

    def for_worker(self, ws: Workspace, executor: BaseExecutor, worker: str) -> Bench:
        """Another worker's bench: its own worktree, executor and name; the rest shared."""
        return replace(self, ws=ws, executor=executor, worker=worker)

    @contextmanager
    def unlocked(self) -> Iterator[None]:
        """Let other workers own the ledger and git while this one waits on a phase.

        A no-op for a caller that does not hold the lock (``ratchet try``, one worker).
        The lock is re-entrant (the shared sampler takes it again), so every level
        this thread holds is let go, and taken back after.
        """
        held = 0
        while True:
            try:
                self.cond.release()
            except RuntimeError:  # no (more) level held by this thread
                break
            held += 1
        try:
            yield
        finally:
            for _ in range(held):
                self.cond.acquire()

    def refresh(self) -> list[Experiment]:
        """Read the history from the ledger: once per experiment (other tags may have moved).

        In place: every worker's bench shares the one list.
        """
        self.history[:] = self.ws.ledger.experiments()
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
        self.diff: dict[str, int] = {}  # lines added and removed, files changed
        self.started_on: Experiment | None = None  # the tag's incumbent when it was chosen
        self.rebases = 0  # how many times this change was re-applied on a newer incumbent

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
        bench.observer.assigned(bench.worker, exp_id)
        return trial

    def candidate(self, seed: int) -> Candidate:
        plain = self.bench.ws.candidate(self.id, seed)
        return Candidate(plain.study_dir, plain.log_dir, seed, self.commit or "", self.id)

    def sample(self, seed: int, watch: Watch | None = None) -> Measurement:
        """Measure once with ``seed`` and record the sample; Ctrl-C during it stops the loop."""
        with self.bench.unlocked():
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
        with bench.unlocked():
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
        # a top-up finishes before its candidate; a row read while running is replaced
        bench.history[:] = [e for e in bench.history if e.id != exp.id]
        insort(bench.history, exp, key=lambda e: e.id)
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


def remeasure_incumbent(bench: Bench, target: Experiment | None = None) -> Experiment:
    """Measure the incumbent's commit (or ``target``'s) once more, as its own row (the
    ledger is append-only). With several workers, go through ``bench.sampler``."""
    current = target or incumbent(bench.mine())
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
    tag's incumbent. With several workers the loop calls the two halves itself:
    ``start_proposal`` on its own thread, ``measure_proposal`` on the worker's.
    """
    started = start_proposal(bench, base, files, proposal, choice)
    if isinstance(started, Experiment):
        return started
    return measure_proposal(started, parent, proposal, choice)


def start_proposal(
    bench: Bench,
    base: str,
    files: dict[str, str],
    proposal: Proposal,
    choice: Choice | None = None,
    started_on: Experiment | None = None,
) -> Trial | Experiment:
    """Verify, dedupe, commit and write the ``running`` row: the started ``Trial``, or the
    finished row of a proposal rejected before it ran (it costs no budget).

    ``started_on``: the tag's incumbent when the parent was chosen (default: now),
    what the concurrent keep rule compares with when the candidate is judged.
    """
    ws = bench.ws
    started_on = started_on or incumbent(bench.mine())
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
    trial.diff, trial.started_on = diff, started_on
    if rejection or link:
        reason = f"{rejection.stage}: {rejection.reason}" if rejection else f"{link} is a symlink"
        return trial.finish(Outcome("rejected", None, reason))
    return trial


def measure_proposal(
    trial: Trial, parent: Experiment, proposal: Proposal, choice: Choice | None = None
) -> Experiment:
    """Smoke, measure and judge a started proposal against ``parent``; finish its row."""
    return _try(trial, parent, trial.commit or "", trial.diff, proposal, choice)


def _try(
    trial: Trial,
    parent: Experiment,
    base: str,
    diff: dict[str, int],
    proposal: Proposal,
    choice: Choice | None,
) -> Experiment:
    """Smoke, measure and judge a started trial; a keep whose incumbent moved is rebased."""
    bench = trial.bench
    bench.observer.experiment_started(trial.id, proposal.description)
    with bench.unlocked():
        smoke = bench.executor.smoke(trial.candidate(0))
    if smoke is not None and smoke.status != "ok":
        status = "crash" if smoke.status in ("rejected", "pruned") else smoke.status
        return trial.finish(Outcome(status, None, f"smoke: {smoke.reason}", smoke.duration_s))
    outcome = _measure_candidate(trial, parent, base, diff)
    moved = _moved(bench, parent, trial.started_on, choice) if outcome.status == "keep" else None
    if moved is None:
        return trial.finish(outcome)
    return _rebase(trial, outcome, parent, moved, proposal, choice)


def _moved(
    bench: Bench, parent: Experiment, started_on: Experiment | None, choice: Choice | None
) -> Experiment | None:
    """The new incumbent, when the candidate was built on and judged against the tag's
    incumbent and another worker's keep replaced it meanwhile (the concurrent keep
    rule); else None."""
    if started_on is None or choice is not None and (
        choice.island is not None or choice.parent.id != started_on.id
    ):
        return None
    now = incumbent(bench.mine())
    if parent.id != started_on.id or now is None or now.id == started_on.id:
        return None
    return now


def _rebase(
    trial: Trial,
    outcome: Outcome,
    parent: Experiment,
    now: Experiment,
    proposal: Proposal,
    choice: Choice | None,
) -> Experiment:
    """Re-apply a keep on the incumbent that replaced its parent, as a new experiment.

    The original is finished as a ``discard`` that names what happened; the
    rebase is measured (and judged against the new incumbent) by the same
    worker. A merge that conflicts ends there, with the files named.
    """
    bench, ws = trial.bench, trial.bench.ws
    beat = f"beat its parent #{parent.id} ({outcome.reason}) but the incumbent moved to #{now.id}"
    if trial.rebases >= MAX_REBASES:  # a busy tag would otherwise chase its incumbent forever
        why = f"{beat}; not re-applied again after {trial.rebases} rebases"
        return trial.finish(Outcome("discard", outcome.metric, why, outcome.seconds))
    assert trial.commit is not None and now.commit is not None
    title = f"rebase of #{trial.id}: {printable(proposal.description)}"
    message = f"{title}\n\nRatchet-Tag: {ws.tag}\n"
    merged, conflicts = ws.repo.merge_onto(trial.commit, now.commit, message)
    if merged is None:
        why = f"{beat}; re-applying it there conflicts in {', '.join(conflicts) or 'its files'}"
        return trial.finish(Outcome("discard", outcome.metric, why, outcome.seconds))
    lines = ws.repo.diff_stat(now.commit, merged)
    if not lines[2]:
        why = f"{beat}, which already has its change"
        return trial.finish(Outcome("discard", outcome.metric, why, outcome.seconds))
    ws.checkout(merged)
    diff = {"added": lines[0], "removed": lines[1], "files": lines[2]}
    on_now = Choice(now, now, choice.kind if choice else "improve", reason=title)
    again = Trial.start(
        bench, parent=now.commit, commit=merged,
        description=f"rebase of #{trial.id}: {proposal.description}",
        proposal=proposal, meta={"diff": diff, "rebase_of": trial.id}, proposed=True,
        choice=on_now,
    )  # fmt: skip
    again.diff, again.started_on, again.rebases = diff, now, trial.rebases + 1
    reason = f"{beat}; rebased as #{again.id}"
    trial.finish(Outcome("discard", outcome.metric, reason, outcome.seconds))
    return _try(again, now, now.commit, diff, proposal, on_now)


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
        if turn == "incumbent" and not interleave:  # first the samples other workers took
            shared = protocol.reference(bench.mine(), parent)
            if len(shared) > len(reference):
                reference[:] = shared
                turn = protocol.next_sample(
                    samples, alongside, reference, interleave=False, exact=not top_ups
                )
        if turn == "incumbent":
            again = bench.sampler.remeasure(bench, parent)  # shared by every worker
            bench.ws.checkout(trial.commit or base)
            if not again:
                interleave = top_ups = False
            else:
                reference.extend(again)
                alongside.append(again[-1])
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
