"""``ratchet status``, ``log``, ``show`` and ``report``: reading the ledger (read-only),
through ``store.queries`` so a figure means the same in each."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from ..git.repo import Repo
from ..models import ROUTINE, Experiment
from ..run.workspace import STATE_DIR, lock_holder
from ..store import queries
from ..store.journal import confirmed
from ..study import Study, load_study
from . import common
from .console import format_metric

__all__ = ["cmd_status", "cmd_log", "cmd_show", "cmd_report"]


def cmd_status(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    experiments = common.experiments(study, args.tag)
    out = common.out()
    figures = queries.overview(experiments)
    counts = figures.counts
    out.print(f"study {study.name} ({study.metric.name}, {study.metric.goal})")
    if study.run.sandbox == "none":
        out.print('warning: sandbox = "none": candidate code runs with your full permissions')
    base, best = figures.baseline, figures.incumbent
    if base is not None and best is not None:
        out.print(f"baseline  {format_metric(base.metric)} (#{base.id})")
        out.print(
            f"incumbent {format_metric(best.metric)} (#{best.id},"
            f" {common.change(base.metric, best.metric)}) {best.description}"
        )
    out.print("counts    " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    for line in _budget_lines(figures):
        out.print(line)
    usage = _usage_line(study, figures)
    if usage:
        out.print(f"proposer  {usage}")
    for name in sorted({e.tag for e in experiments}):
        pid = lock_holder(study, name)
        running = [e for e in figures.running if e.tag == name]
        if pid:
            what = (
                f"#{running[-1].id} {running[-1].description}" if running else "between experiments"
            )
            out.print(f"running   {what} (tag {name}, pid {pid})")
    return 0


def _budget_lines(figures: queries.Overview) -> list[str]:
    """Where the budget went, and what rejecting and pruning saved (see ``queries.overview``)."""
    spent = figures.failed_s
    lines = [f"budget    {spent:.1f} s spent on candidates that crashed, timed out or were pruned"]
    if figures.saved_rejecting_s is None or figures.saved_pruning_s is None:
        return lines
    early, pruned = figures.rejected_early, figures.pruned
    proposals = f"{early} proposal{'' if early == 1 else 's'}"
    runs = f"{pruned} run{'' if pruned == 1 else 's'}"
    lines.append(
        f"saved     ~{figures.saved_rejecting_s:.1f} s by rejecting {proposals} before running,"
        f" ~{figures.saved_pruning_s:.1f} s by stopping {runs} early (estimates from median"
        " durations)"
    )
    return lines


def cmd_log(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    experiments = common.experiments(study, args.tag)
    if args.json:
        print(json.dumps(queries.rows(experiments), indent=2))
        return 0
    table = Table(show_edge=False, header_style="bold")
    spend = any(e.usage.input_tokens or e.usage.output_tokens for e in experiments)
    checked = any(confirmed(e) is not None for e in experiments)
    columns = ("id", "tag", "status", study.metric.name, *(("confirm",) if checked else ()))
    columns += ("time", "commit")
    for column in (*columns, *(("tokens", "cost") if spend else ()), "description"):
        table.add_column(column, no_wrap=column != "description", overflow="fold")
    for e in experiments:
        note = f" ({e.reason.splitlines()[0]})" if e.reason and e.status not in ROUTINE else ""
        table.add_row(
            str(e.id),
            e.tag,
            e.status,
            format_metric(e.metric),
            *((_CONFIRM_CELL[confirmed(e)],) if checked else ()),
            f"{e.duration_s:.1f}s",
            (e.commit or "")[:7],
            *(_spend_cells(e) if spend else ()),
            e.description + note,
        )
    common.out().print(table)
    return 0


_CONFIRM_CELL = {True: "yes", False: "NO", None: ""}  # [confirm] result of a keep


def _spend_cells(e: Experiment) -> tuple[str, str]:
    """The log's tokens and cost cells (blank when nothing was spent or no price is known)."""
    tokens = e.usage.input_tokens + e.usage.output_tokens
    cost = e.usage.cost_usd
    return (f"{tokens:,}" if tokens else "", f"${cost:.4f}" if cost else "")


def _usage_line(study: Study, figures: queries.Overview) -> str:
    """Tokens and cost the proposer spent, with the caps when set; "" when nothing was spent."""
    tokens_in, tokens_out = figures.input_tokens, figures.output_tokens
    if not tokens_in and not tokens_out:
        return ""
    spec = study.proposer
    cost = figures.cost_usd
    token_cap = f" of max {spec.max_total_tokens:,}" if spec.max_total_tokens else ""
    cost_cap = f" of max ${spec.max_cost_usd:g}" if spec.max_cost_usd else ""
    money = f", ${cost:.4f}{cost_cap}" if cost or cost_cap else " (no price set for the model)"
    return (
        f"{tokens_in + tokens_out:,} tokens ({tokens_in:,} in, {tokens_out:,} out){token_cap}"
        + money
    )


def cmd_show(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    exp = common.one(study, args.id)
    out = common.out()
    out.print(
        f"#{exp.id} {exp.status}  {study.metric.name}={format_metric(exp.metric)}"
        f"  tag {exp.tag}  {exp.duration_s:.1f}s"
    )
    out.print(f"commit {exp.commit or '—'}  parent {exp.parent or '—'}")
    out.print(f"description: {exp.description}")
    if exp.rationale:
        out.print(f"rationale: {exp.rationale}")
    if exp.reason:
        out.print(f"reason: {exp.reason}")
    if exp.extras:
        out.print("extras: " + ", ".join(f"{k}={v:g}" for k, v in sorted(exp.extras.items())))
    if args.diff and exp.commit and exp.parent:
        sys.stdout.write(Repo.discover(study.root).diff(exp.parent, exp.commit))
    if args.log:
        for path in sorted(Path(exp.log_dir).rglob("*.log")) if exp.log_dir else []:
            out.print(f"--- {path.relative_to(exp.log_dir)}")
            sys.stdout.write(path.read_text(encoding="utf-8", errors="replace"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    study = load_study(Path(args.dir))
    experiments = common.experiments(study, args.tag)
    out_dir = args.out or study.root / STATE_DIR
    png, md = write_report(
        experiments,
        metric_name=study.metric.name,
        goal=study.metric.goal,
        out_dir=out_dir,
        title=study.name,
    )
    common.out().print(f"wrote {png}\nwrote {md}")
    return 0
