"""The research loop, top to bottom.

    baseline (samples) ─▶ [re-measure the incumbent every N]
      ─▶ policy.choose ─▶ propose ─▶ trial: verify + dedupe ─▶ commit ─▶ smoke
      ─▶ measure (pruned early when clearly worse) ─▶ judge (more samples?) ─▶ [confirm]
      ─▶ record (+ keep, journal)

The baseline is measured first. Every experiment gets a ledger row written as
``running`` before anything runs, a git ref under ``refs/ratchet/<tag>/exp/<id>``,
and exactly one final status. A keep is recorded in the ledger before the
branch moves, so after a crash the ledger is the truth and the branch is
repaired from it (see ``workspace``). One experiment's effects live in
``trial`` (shared with ``ratchet try``); the sampling protocol in
``decide.sampling``; dedupe and the journal in ``store.journal``. Rejected
proposals (verify, dedupe) cost no budget.

The executor and the policy are seams: ``run_study(..., executor=..., policy=...)``
takes any object with ``BaseExecutor``'s methods (a test passes a function
wrapped in one, so the loop runs in milliseconds without processes) and any
``policies.Policy``; by default the local process executor and the policy
``[search] policy`` names (greedy, tree or islands).

Per experiment the policy's ``Choice`` says where to start: its parent's commit
is checked out and built on, the candidate is judged against its incumbent, a
``debug`` choice shows the proposer that node's failure, and the row records
the lineage (parent id, island, kind). A keep moves ``ratchet/<tag>`` forward
only: a fast-forward, or a merge commit carrying the new incumbent when the
keep does not descend from the branch head (tree, islands), so no kept commit
leaves its history; under islands the keep also moves its island's own branch
``ratchet-island/<tag>/<k>`` the same way (``workspace.carry``).
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass

from ..decide.judge import Judge
from ..decide.sampling import remeasure_due
from ..errors import ProposalError, ProposalsExhausted, RatchetError
from ..execute.base import BaseExecutor
from ..execute.phases import Executor
from ..models import BROKE, Context, Experiment, incumbent
from ..observer import Observer
from ..policies import Choice, Policy, make_policy
from ..proposers.base import Proposer
from ..proposers.regions import is_region_limited
from ..store.journal import render_journal
from ..study import Study
from . import control
from .trial import BaselineFailed, Bench, baseline, remeasure_incumbent, run_proposal, unproposed
from .verify import linter
from .workspace import Workspace

__all__ = ["RunOptions", "RunSummary", "BaselineFailed", "Policy", "run_study"]

PAUSE_POLL_S = 0.2  # how often a paused loop looks for `ratchet resume`


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
    best: float | None  # the incumbent's metric (``models.incumbent``)
    stopped: str


def run_study(
    study: Study,
    proposer: Proposer,
    judge: Judge,
    options: RunOptions | None = None,
    observer: Observer | None = None,
    *,
    executor: BaseExecutor | None = None,
    policy: Policy | None = None,
) -> RunSummary:
    """Run experiments until a limit, Ctrl-C, or the proposer runs out."""
    options = options or RunOptions()
    observer = observer or Observer()
    workspace = Workspace.open(study, options.tag, observer, budget=options.budget)
    try:
        if executor is None:
            executor = Executor(
                study, pinned=workspace.pinned, observer=observer, budget=options.budget
            )
        bench = Bench(workspace, executor, judge, observer, proposer=proposer.name)
        policy = policy or make_policy(study.search, study.metric.goal)
        summary = _loop(bench, proposer, policy, options)
    except BaseException:
        # The first error is the one to report (a full disk while writing the ledger,
        # say); a second failure of the export must not replace it.
        with contextlib.suppress(RatchetError, OSError):
            workspace.export()
        raise
    else:
        workspace.export()
        return summary
    finally:
        workspace.close()


def _loop(bench: Bench, proposer: Proposer, policy: Policy, options: RunOptions) -> RunSummary:
    ws, observer = bench.ws, bench.observer
    ends_at = time.monotonic() + options.hours * 3600 if options.hours else None
    ran, failures, stopped = 0, 0, "max-experiments reached"
    if linter() is None and any(p.endswith(".py") for p in ws.study.editable_files()):
        observer.message("note: ruff is not installed, so the lint stage (undefined names) is off")
    control.clear(ws.state_dir, ws.tag)  # a request left from an earlier run is not for us
    try:
        bench.refresh()
        if incumbent(bench.mine()) is None:
            baseline(bench)
        while options.max_experiments is None or ran < options.max_experiments:
            if ends_at is not None and time.monotonic() >= ends_at:
                stopped = "time limit (--hours) reached"
                break
            if _steered(ws, observer):
                stopped = "stopped by `ratchet stop`"
                break
            bench.refresh()  # the history, read once per experiment
            if remeasure_due(bench.mine(), ws.study, bench.judge):
                remeasure_incumbent(bench)
                continue
            try:
                exp = _experiment(bench, proposer, policy)
            except ProposalsExhausted as exc:
                stopped = str(exc)
                break
            ran += 1
            failed = exp.meta.get("proposer_failed") or exp.meta.get("unusable")
            failures = failures + 1 if failed else 0
            if failures >= ws.study.proposer.max_failures:
                stopped = _gave_up(proposer.name, failures, exp)
                break
    except KeyboardInterrupt:  # also raised by a sample that Ctrl-C interrupted
        ws.interrupted("stopped by Ctrl-C")
        return _summary(ws, ran, "interrupted")
    finally:
        control.clear(ws.state_dir, ws.tag)
    return _summary(ws, ran, stopped)


def _gave_up(name: str, failures: int, last: Experiment) -> str:
    """Why the run ends after ``failures`` proposals in a row came to nothing ([proposer]
    max_failures): an endpoint that fails is for ``ratchet doctor``; answers that never
    hold an applicable edit are for the model and program.md, which doctor cannot judge."""
    if last.meta.get("unusable"):
        return (
            f"the {name} proposer gave {failures} unusable answers in a row (last: {last.reason})"
            " — try a stronger model, or make program.md say what to change"
        )
    return (
        f"the {name} proposer failed {failures} times in a row"
        f" (last: {last.reason}) — check it with `ratchet doctor`"
    )


def _steered(ws: Workspace, observer: Observer) -> bool:
    """Between experiments: wait while paused (``ratchet pause``); True when asked to stop."""
    said = False
    while (asked := control.requested(ws.state_dir, ws.tag)) == "pause":
        if not said:
            observer.message(f"paused (tag {ws.tag}): `ratchet resume` continues")
            said = True
        time.sleep(PAUSE_POLL_S)
    if said and asked is None:
        observer.message(f"resumed (tag {ws.tag})")
    return asked == "stop"


def _experiment(bench: Bench, proposer: Proposer, policy: Policy) -> Experiment:
    """One full experiment: propose, then the trial (verify, commit, measure, judge, record).

    The policy's random stream is seeded by the study, the tag and the number of
    experiments so far, so a resumed run draws what an uninterrupted one would.
    """
    mine = bench.mine()
    rng = random.Random(f"{bench.study.name}/{bench.ws.tag}/{len(mine)}")
    choice = policy.choose(mine, rng, busy=())
    assert choice is not None and choice.parent.commit is not None  # a baseline exists
    parent = choice.parent
    files = bench.ws.checkout(parent.commit)
    try:
        proposal = proposer.propose(_context(bench, choice, files))
    except ProposalsExhausted:
        raise
    except ProposalError as exc:
        bench.proposer = _who(proposer)
        return unproposed(bench, parent, exc, choice)
    bench.proposer = _who(proposer)
    return run_proposal(bench, choice.incumbent, parent.commit, files, proposal, choice)


def _who(proposer: Proposer) -> str:
    """The name recorded on the row: an ensemble's member that answered, else the proposer."""
    return str(getattr(proposer, "current", "") or proposer.name)


def _context(bench: Bench, choice: Choice, files: dict[str, str]) -> Context:
    """What the proposer sees; a ``debug`` choice shows the failure of the node to repair."""
    ws, history, parent = bench.ws, bench.history, choice.parent
    failures = [e for e in history if e.status in BROKE and e.tag == ws.tag]
    if choice.kind == "debug":
        failures = [parent]
    return Context(
        study_name=ws.study.name,
        tag=ws.tag,
        program=ws.program,
        files=files,
        parent_commit=parent.commit or "",
        metric_name=ws.study.metric.name,
        goal=ws.study.metric.goal,
        history=list(history),
        incumbent=choice.incumbent,  # what the candidate must beat (the files are parent's)
        last_failure_log=failures[-1].reason[-2000:] if failures else "",
        journal=render_journal(
            history, metric_name=ws.study.metric.name, goal=ws.study.metric.goal
        ),
        workdir=str(ws.study_dir),
        seed=len(history),
        readonly={
            name: (ws.study_dir / name).read_text(encoding="utf-8", errors="replace")
            for name in ws.study.context_files(ws.study_dir)
        },
        limited=tuple(p for p in files if is_region_limited(p, ws.study.editable)),
        notes=ws.ledger.notes(ws.tag),
    )


def _summary(ws: Workspace, ran: int, stopped: str) -> RunSummary:
    exps = ws.experiments()
    best = incumbent(exps)
    return RunSummary(
        tag=ws.tag,
        ran=ran,
        kept=sum(e.status == "keep" for e in exps),
        baseline=next((e.metric for e in exps if e.status == "baseline"), None),
        best=best.metric if best else None,
        stopped=stopped,
    )
