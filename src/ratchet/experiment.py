"""One experiment, end to end: the steps ``ratchet run`` and ``ratchet try`` share.

    verify + dedupe ─▶ commit ─▶ record (running) ─▶ smoke ─▶ sample + judge ─▶ finish

Every measurement, whether a proposal, the baseline or a re-measurement of
the incumbent, gets a ledger row written as ``running`` before anything
runs, and exactly one final status from ``finish``: ledger first, then refs,
then results.tsv and the journal, so after a crash the ledger is the truth.
"""

from __future__ import annotations

from .errors import ExperimentError, ProposalError, ProposalUnusable
from .execute.phases import Executor
from .judge import Judge
from .memory import normalized_patch, patch_meta, write_journal
from .models import Experiment, Proposal
from .observer import Observer
from .policies.greedy import incumbent
from .sampling import Outcome, measure_baseline, measure_candidate, remeasure
from .verify import dedupe, diff_stats, verify
from .workspace import Workspace

__all__ = [
    "BaselineFailed",
    "baseline",
    "remeasure_incumbent",
    "run_proposal",
    "unproposed",
    "finish",
]


class BaselineFailed(ExperimentError):
    """The unmodified study did not produce a metric: nothing can be compared to it."""


def baseline(ws: Workspace, executor: Executor, judge: Judge, observer: Observer) -> Experiment:
    """Measure the unmodified code; a baseline that fails stops the run (exit 1)."""
    head = ws.repo.rev(ws.branch_ref) or ws.repo.head()
    ws.checkout(head)
    exp_id = _start(ws, observer, parent=None, commit=head, description="baseline")
    outcome = measure_baseline(ws, executor, judge, exp_id)
    exp = finish(ws, observer, exp_id, outcome, head)
    if outcome.status != "baseline":
        command = ws.study.run.command or (ws.study.evaluate and ws.study.evaluate.command)
        raise BaselineFailed(
            f"the baseline (unmodified code) ended with {outcome.status}: {outcome.reason}"
            f" — fix the study until `{command}` works, see"
            f" `ratchet show {exp_id} --log`"
        )
    return exp


def remeasure_incumbent(ws: Workspace, executor: Executor, observer: Observer) -> Experiment:
    """Measure the incumbent's commit once more, as its own row (the ledger is append-only)."""
    current = incumbent(ws.experiments())
    assert current is not None and current.commit is not None
    ws.checkout(current.commit)
    description = f"re-measure incumbent #{current.id}"
    exp_id = _start(
        ws, observer, parent=current.commit, commit=current.commit, description=description
    )
    outcome = remeasure(ws, executor, exp_id, current)
    return finish(ws, observer, exp_id, outcome, current.commit)


def _start(
    ws: Workspace, observer: Observer, *, parent: str | None, commit: str, description: str
) -> int:
    """The running row of a measurement that is not a proposal (baseline, re-measure)."""
    exp_id = ws.ledger.start(
        tag=ws.tag,
        parent=parent,
        commit=commit,
        description=description,
        log_dir=ws.log_dir_template,
    )
    observer.experiment_started(exp_id, description)
    return exp_id


def run_proposal(
    ws: Workspace,
    executor: Executor,
    judge: Judge,
    observer: Observer,
    parent: Experiment,
    base: str,
    files: dict[str, str],
    proposal: Proposal,
) -> Experiment:
    """Verify, commit on ``base``, record, smoke, then sample and judge against ``parent``.

    ``ratchet run`` builds on the incumbent (``base`` is its commit); ``ratchet
    try`` builds on the user's HEAD and judges against the tag's incumbent.
    """
    patch = normalized_patch(files, proposal.edits)
    rejection = verify(proposal, ws.study, files) or dedupe(patch, ws.ledger.experiments())
    link = ws.symlinked(proposal) if rejection is None else None
    commit = ws.commit(base, proposal) if rejection is None and not link else None
    if commit:
        ws.check_candidate_pins()
    diff = diff_stats(files, proposal.edits)
    exp_id = ws.ledger.start(
        tag=ws.tag,
        parent=base,
        commit=commit,
        description=proposal.description,
        rationale=proposal.rationale,
        meta={**proposal.meta, "diff": diff, **patch_meta(patch)},
        usage=proposal.usage,
        log_dir=ws.log_dir_template,
    )
    if rejection or link:
        reason = f"{rejection.stage}: {rejection.reason}" if rejection else f"{link} is a symlink"
        return finish(ws, observer, exp_id, Outcome("rejected", None, reason), commit)
    observer.experiment_started(exp_id, proposal.description)
    smoke = executor.smoke(ws.candidate(exp_id, 0))
    if smoke is not None and smoke.status != "ok":
        status = "crash" if smoke.status in ("rejected", "pruned") else smoke.status
        outcome = Outcome(status, None, f"smoke: {smoke.reason}", smoke.duration_s)
        return finish(ws, observer, exp_id, outcome, commit)

    def top_up() -> float | None:
        """One more sample of the incumbent, so both sides are measured about as well."""
        again = remeasure_incumbent(ws, executor, observer)
        ws.checkout(commit or base)
        return again.metric

    outcome = measure_candidate(ws, executor, judge, exp_id, parent, diff, top_up=top_up)
    return finish(ws, observer, exp_id, outcome, commit)


def unproposed(
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
    return finish(ws, observer, exp_id, Outcome("rejected", None, f"proposal: {exc}"), None)


def finish(
    ws: Workspace, observer: Observer, exp_id: int, outcome: Outcome, commit: str | None
) -> Experiment:
    """Ledger first, then refs: after a crash in between, the ledger is the truth."""
    ws.ledger.finish(
        exp_id,
        status=outcome.status,
        metric=outcome.metric,
        reason=outcome.reason,
        duration_s=outcome.seconds,
    )
    ws.record_refs(exp_id, commit, kept=outcome.status == "keep")
    ws.export()
    exp = ws.ledger.get(exp_id)
    write_journal(
        ws.state_dir / "journal.md",
        ws.ledger.experiments(),
        metric_name=ws.study.metric.name,
        goal=ws.study.metric.goal,
        title=ws.study.name,
    )
    observer.experiment_finished(exp)
    return exp
