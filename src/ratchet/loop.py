"""The research loop, top to bottom.

    pick_parent ─▶ propose ─▶ verify ─▶ commit ─▶ measure ─▶ judge ─▶ record (+ keep)

The baseline is measured first. Every experiment gets a ledger row written as
``running`` before anything runs, a git ref under ``refs/ratchet/<tag>/exp/<id>``,
and exactly one final status. A keep is recorded in the ledger before the
branch moves, so after a crash the ledger is the truth and the branch is
repaired from it (see ``workspace``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from statistics import fmean

from .errors import ExperimentError, ProposalError, ProposalsExhausted, ProposalUnusable
from .execute.phases import Executor, Measurement
from .judge import Judge
from .models import Context, Experiment
from .observer import Observer
from .policies import pick_parent
from .proposers.base import Proposer
from .study import Study
from .verify import diff_stats, verify
from .workspace import Workspace

__all__ = ["RunOptions", "RunSummary", "BaselineFailed", "run_study"]


@dataclass(frozen=True)
class RunOptions:
    tag: str = "main"
    max_experiments: int | None = None
    hours: float | None = None
    budget: float | None = None


@dataclass(frozen=True)
class RunSummary:
    tag: str
    ran: int
    kept: int
    baseline: float | None
    best: float | None
    stopped: str


class BaselineFailed(ExperimentError):
    """The unmodified study did not produce a metric: nothing can be compared to it."""


def run_study(
    study: Study,
    proposer: Proposer,
    judge: Judge,
    options: RunOptions | None = None,
    observer: Observer | None = None,
) -> RunSummary:
    """Run experiments until a limit, Ctrl-C, or the proposer runs out."""
    options = options or RunOptions()
    observer = observer or Observer()
    workspace = Workspace.open(study, options.tag, observer)
    try:
        return _loop(workspace, proposer, judge, options, observer)
    finally:
        workspace.export()
        workspace.close()


def _loop(
    ws: Workspace, proposer: Proposer, judge: Judge, options: RunOptions, observer: Observer
) -> RunSummary:
    executor = Executor(ws.study, pinned=ws.pinned, observer=observer, budget=options.budget)
    ends_at = time.monotonic() + options.hours * 3600 if options.hours else None
    ran, failures, stopped = 0, 0, "max-experiments reached"
    try:
        if pick_parent(ws.experiments()) is None:
            _baseline(ws, executor, observer)
        while options.max_experiments is None or ran < options.max_experiments:
            if ends_at is not None and time.monotonic() >= ends_at:
                stopped = "time limit (--hours) reached"
                break
            try:
                exp = _experiment(ws, executor, proposer, judge, observer)
            except ProposalsExhausted as exc:
                stopped = str(exc)
                break
            ran += 1
            failures = failures + 1 if exp.meta.get("proposer_failed") else 0
            if failures >= ws.study.proposer.max_failures:
                stopped = (
                    f"the {proposer.name} proposer failed {failures} times in a row"
                    f" (last: {exp.reason}) — check it with `ratchet doctor`"
                )
                break
    except KeyboardInterrupt:  # also raised by a sample that Ctrl-C interrupted
        ws.interrupted("stopped by Ctrl-C")
        return _summary(ws, ran, "interrupted")
    return _summary(ws, ran, stopped)


def _baseline(ws: Workspace, executor: Executor, observer: Observer) -> Experiment:
    """Measure the unmodified code; a baseline that fails stops the run (exit 1)."""
    head = ws.repo.rev(ws.branch_ref) or ws.repo.head()
    ws.checkout(head)
    exp_id = ws.ledger.start(
        tag=ws.tag,
        parent=None,
        commit=head,
        description="baseline",
        log_dir=ws.log_dir_template,
    )
    observer.experiment_started(exp_id, "baseline")
    m = _sample(ws, executor, exp_id, seed=0)
    status = "baseline" if m.status == "ok" else m.status
    exp = _finish(ws, observer, exp_id, status, m.metric, m.reason, m.duration_s, head)
    if status != "baseline":
        raise BaselineFailed(
            f"the baseline (unmodified code) ended with {status}: {m.reason}"
            f" — fix the study until `{ws.study.run.command}` works, see"
            f" `ratchet show {exp_id} --log`"
        )
    return exp


def _experiment(
    ws: Workspace, executor: Executor, proposer: Proposer, judge: Judge, observer: Observer
) -> Experiment:
    """One full experiment: propose, verify, commit, measure, judge, record."""
    parent = pick_parent(ws.experiments())
    assert parent is not None and parent.commit is not None
    files = ws.checkout(parent.commit)
    try:
        proposal = proposer.propose(_context(ws, parent, files))
    except ProposalsExhausted:
        raise
    except ProposalError as exc:
        return _unproposed(ws, observer, parent, exc)
    rejection = verify(proposal, ws.study, files)
    link = ws.symlinked(proposal) if rejection is None else None
    commit = ws.commit(parent.commit, proposal) if rejection is None and not link else None
    exp_id = ws.ledger.start(
        tag=ws.tag,
        parent=parent.commit,
        commit=commit,
        description=proposal.description,
        rationale=proposal.rationale,
        meta={**proposal.meta, "diff": diff_stats(files, proposal.edits)},
        usage=proposal.usage,
        log_dir=ws.log_dir_template,
    )
    if rejection or link:
        reason = f"{rejection.stage}: {rejection.reason}" if rejection else f"{link} is a symlink"
        return _finish(ws, observer, exp_id, "rejected", None, reason, 0.0, commit)
    observer.experiment_started(exp_id, proposal.description)
    smoke = executor.smoke(ws.candidate(exp_id, 0))
    if smoke is not None and smoke.status != "ok":
        status = "crash" if smoke.status in ("rejected", "pruned") else smoke.status
        reason = f"smoke: {smoke.reason}"
        return _finish(ws, observer, exp_id, status, None, reason, smoke.duration_s, commit)
    return _judged(ws, executor, judge, observer, exp_id, parent, commit)


def _unproposed(
    ws: Workspace, observer: Observer, parent: Experiment, exc: ProposalError
) -> Experiment:
    """A proposer that failed still leaves a row: the reason is shown in the next prompt."""
    exp_id = ws.ledger.start(
        tag=ws.tag,
        parent=parent.commit,
        commit=None,
        description="(no proposal)",
        meta={"proposer_failed": not isinstance(exc, ProposalUnusable)},
        usage=exc.usage,
        log_dir=ws.log_dir_template,
    )
    return _finish(ws, observer, exp_id, "rejected", None, f"proposal: {exc}", 0.0, None)


def _judged(
    ws: Workspace,
    executor: Executor,
    judge: Judge,
    observer: Observer,
    exp_id: int,
    parent: Experiment,
    commit: str | None,
) -> Experiment:
    """Sample the candidate until the judge decides, then record and maybe keep."""
    samples: list[float] = []
    seconds = 0.0
    seed = 0
    while True:
        m = _sample(ws, executor, exp_id, seed)
        seconds += m.duration_s
        if m.status != "ok":
            return _finish(ws, observer, exp_id, m.status, None, m.reason, seconds, commit)
        samples.append(m.metric)  # type: ignore[arg-type]
        verdict = judge.decide(samples, parent.samples or [parent.metric], ws.study.metric.goal)
        if verdict.decision != "more":
            break
        seed += 1
    status = "keep" if verdict.decision == "keep" else "discard"
    return _finish(ws, observer, exp_id, status, fmean(samples), verdict.reason, seconds, commit)


def _sample(ws: Workspace, executor: Executor, exp_id: int, seed: int) -> Measurement:
    m = executor.measure(ws.candidate(exp_id, seed))
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


def _finish(
    ws: Workspace,
    observer: Observer,
    exp_id: int,
    status: str,
    metric: float | None,
    reason: str,
    seconds: float,
    commit: str | None,
) -> Experiment:
    """Ledger first, then refs: after a crash in between, the ledger is the truth."""
    ws.ledger.finish(exp_id, status=status, metric=metric, reason=reason, duration_s=seconds)
    ws.record_refs(exp_id, commit, kept=status == "keep")
    ws.export()
    exp = ws.ledger.get(exp_id)
    observer.experiment_finished(exp)
    return exp


def _context(ws: Workspace, parent: Experiment, files: dict[str, str]) -> Context:
    history = ws.ledger.experiments()
    failures = [e for e in history if e.status in ("crash", "timeout") and e.tag == ws.tag]
    return Context(
        study_name=ws.study.name,
        tag=ws.tag,
        program=ws.program,
        files=files,
        parent_commit=parent.commit or "",
        metric_name=ws.study.metric.name,
        goal=ws.study.metric.goal,
        history=history,
        incumbent=parent,
        last_failure_log=failures[-1].reason[-2000:] if failures else "",
        workdir=str(ws.study_dir),
        seed=len(history),
    )


def _summary(ws: Workspace, ran: int, stopped: str) -> RunSummary:
    exps = ws.experiments()
    measured = [e for e in exps if e.status in ("baseline", "keep")]
    return RunSummary(
        tag=ws.tag,
        ran=ran,
        kept=sum(e.status == "keep" for e in exps),
        baseline=measured[0].metric if measured else None,
        best=measured[-1].metric if measured else None,
        stopped=stopped,
    )
