"""``ratchet run``, ``try`` and ``replay``: the commands that measure code."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..decide.judge import make_judge
from ..errors import ConfigError
from ..execute.phases import Candidate, Executor
from ..git.repo import Repo
from ..models import Experiment
from ..proposers import make_proposer
from ..run.loop import RunOptions, run_study
from ..run.trying import format_line, try_working_tree
from ..run.workspace import STATE_DIR, check_tag
from ..store import queries
from ..study import Study, load_study
from . import common
from .console import ConsoleObserver, format_metric

__all__ = ["cmd_run", "cmd_try", "cmd_replay"]


def cmd_run(args: argparse.Namespace) -> int:
    if args.workers != 1:
        raise ConfigError("--workers: parallel experiments are not available yet — use 1")
    if args.budget is not None and args.budget <= 0:
        raise ConfigError(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.max_experiments is not None and args.max_experiments < 0:
        raise ConfigError("--max-experiments must be 0 or more")
    study = load_study(Path(args.dir))
    Repo.discover(study.root).head()
    tag = check_tag(args.tag)
    judge = make_judge(study.decision)
    proposer = make_proposer(study, args.proposer, args.replay, model=args.model)
    options = RunOptions(
        tag=tag, max_experiments=args.max_experiments, hours=args.hours, budget=args.budget
    )
    history = _history(study, tag)
    _stop_on_signals()
    with ConsoleObserver(common.out(), study, history) as observer:
        summary = run_study(study, proposer, judge, options, observer)
    out = common.out()
    change = common.change(summary.baseline, summary.best)
    out.print(
        f"tag {summary.tag}: {summary.ran} experiments this run, {summary.kept} kept in all;"
        f" {study.metric.name} {format_metric(summary.baseline)} → {format_metric(summary.best)}"
        f" ({change}); stopped: {summary.stopped}"
    )
    out.print(f"results: {study.root / STATE_DIR / 'results.tsv'}   branch: ratchet/{summary.tag}")
    return 0


def cmd_try(args: argparse.Namespace) -> int:
    """One line on stdout (see ``trying.format_line``), exit 0 whatever the verdict."""
    study = load_study(Path(args.dir))
    tag = check_tag(args.tag)
    judge = make_judge(study.decision)
    _stop_on_signals()
    try:
        result = try_working_tree(study, args.message, judge, tag=tag)
    except KeyboardInterrupt:
        print("interrupted: nothing kept, your files are as they were", file=sys.stderr)
        return 130
    for name in result.left:
        print(f"note: {name} changed while it was measured; left as it is", file=sys.stderr)
    print(format_line(result, study.metric.name), flush=True)
    return 0


def _stop_on_signals() -> None:
    """SIGINT (Ctrl-C) and SIGTERM both stop cleanly, recording the running experiment.

    SIGINT is set explicitly: a shell starts background jobs with it ignored,
    and Python then leaves it ignored, so `kill -INT` would do nothing.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _as_interrupt)


def _as_interrupt(_sig: int, _frame: object) -> None:
    """A polite kill (SIGTERM) stops the run like Ctrl-C: the experiment is recorded."""
    raise KeyboardInterrupt


def _history(study: Study, tag: str) -> list[Experiment]:
    if not (study.root / queries.LEDGER_FILE).exists():
        return []
    return common.experiments(study, tag)


def cmd_replay(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    exp = common.one(study, args.id)
    if not exp.commit:
        raise ConfigError(f"experiment #{exp.id} was rejected before it ran; it has no code")
    repo = Repo.discover(study.root)
    tree = repo.worktree(study.root / STATE_DIR / "worktrees" / "replay", exp.commit)
    study_dir = tree.path / study.root.relative_to(repo.root.resolve())
    pinned = {n: (study_dir / n).read_bytes() for n in study.protected_files(study_dir)}
    executor = Executor(study, pinned=pinned)
    logs = study.root / STATE_DIR / "logs" / f"replay-{exp.id}"
    m = executor.measure(Candidate(study_dir, logs, seed=0))
    common.out().print(
        f"#{exp.id} replayed: {m.status} {study.metric.name}={format_metric(m.metric)}"
        f" (recorded {exp.status} {format_metric(exp.metric)})"
        + (f" — {m.reason}" if m.reason else "")
    )
    return 0 if m.status == "ok" else 1
