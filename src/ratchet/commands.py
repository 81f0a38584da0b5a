"""One function per ``ratchet`` subcommand; each returns the exit code.

Commands only parse, call into the package, and print. ``register`` wires
them into argparse; ``cli.main`` turns errors into messages.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from statistics import median

from rich.console import Console
from rich.table import Table

from .console import ConsoleObserver, format_metric
from .errors import ConfigError, RatchetError
from .execute.phases import Candidate, Executor
from .execute.sandbox import describe
from .gitrepo import Repo
from .judge import make_judge
from .loop import RunOptions, run_study
from .memory import confirmed
from .models import Experiment
from .proposers import make_proposer
from .study import CONFIG_NAME, Study, load_study
from .trying import AGENTS_FILE, agent_instructions, format_line, try_working_tree
from .ui import command as ui
from .workspace import STATE_DIR, check_tag, lock_holder, open_ledger

__all__ = ["register"]

TEMPLATES = ("sine", "nanogpt", "blank")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add every subcommand to the parser."""
    p = sub.add_parser("init", help="scaffold a study from a template")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--template", choices=TEMPLATES, default="sine")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="run the research loop")
    _dir_tag(p)
    p.add_argument("--proposer", choices=("mutate", "llm", "agent", "replay"))
    p.add_argument("--replay", type=Path, help="JSONL file of proposals (--proposer replay)")
    p.add_argument("--model", help="model name for the llm proposer")
    p.add_argument("--max-experiments", type=int, help="stop after N experiments (0: baseline)")
    p.add_argument("--hours", type=float, help="stop starting experiments after H hours")
    p.add_argument("--workers", type=int, default=1, help="parallel experiments (1 for now)")
    p.add_argument("--budget", type=float, help="override [run] budget (seconds)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("try", help="measure your edits to the study; keep (commit) or restore")
    _dir_tag(p)
    p.add_argument("-m", "--message", required=True, help="what changed: the commit message")
    p.set_defaults(func=cmd_try)

    for name, func, text in (
        ("status", cmd_status, "incumbent, counts, running experiment"),
        ("log", cmd_log, "one row per experiment"),
    ):
        p = sub.add_parser(name, help=text)
        _dir_tag(p, default=None)
        if name == "log":
            p.add_argument("--json", action="store_true", help="print a JSON list")
        p.set_defaults(func=func)

    p = sub.add_parser("show", help="one experiment: outcome, diff, logs")
    p.add_argument("id", type=int)
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--diff", action="store_true")
    p.add_argument("--log", action="store_true", help="print every phase's captured output")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("replay", help="re-run an experiment's exact code")
    p.add_argument("id", type=int)
    p.add_argument("dir", nargs="?", default=".")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("report", help="write progress.png and report.md")
    _dir_tag(p, default=None)
    p.add_argument("--out", type=Path, help=f"output directory (default DIR/{STATE_DIR})")
    p.set_defaults(func=cmd_report)

    ui.register(sub)

    p = sub.add_parser("doctor", help="what is installed, reachable, misconfigured")
    p.add_argument("dir", nargs="?", default=".")
    p.set_defaults(func=cmd_doctor)


def _dir_tag(p: argparse.ArgumentParser, default: str | None = "main") -> None:
    p.add_argument("dir", nargs="?", default=".", help="study directory (default: .)")
    p.add_argument("--tag", default=default, help="run name; rerun a tag to resume it")


def _out() -> Console:
    """Plain output: descriptions and reasons come from proposers and are never markup."""
    width = None if sys.stdout.isatty() else 200  # piped output is not cut at 80 columns
    return Console(soft_wrap=True, markup=False, highlight=False, width=width)


# --- init -----------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    source = _template_root() / args.template
    names = _template_files(source)
    clash = [n for n in [*names, AGENTS_FILE] if (target / n).exists()]
    if clash:
        raise ConfigError(f"{target / clash[0]} already exists — choose an empty directory")
    for name in names:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((source / name).read_bytes())
    # Instructions for a coding agent driving the study with `ratchet try`, from its own config.
    (target / AGENTS_FILE).write_text(agent_instructions(load_study(target)), encoding="utf-8")
    committed = Repo.init_if_needed(target, f"ratchet init --template {args.template}")
    out = _out()
    out.print(f"created the {args.template} study in {target.resolve()}")
    if not committed:
        out.print("commit it before running: git add -A && git commit -m 'add study'")
    if (target / "prepare.py").is_file():
        out.print(f"first prepare the data: cd {args.dir} && python prepare.py")
    out.print(f"next: ratchet run {args.dir} --max-experiments 10")
    out.print(f"or let a coding agent drive it: {AGENTS_FILE} tells it to loop with `ratchet try`")
    return 0


def _template_root() -> Path:
    """Templates are the repository's examples/ (a source checkout or editable install)."""
    here = Path(__file__).resolve().parents[2] / "examples"
    if here.is_dir():
        return here
    packaged = resources.files("ratchet") / "templates"
    return Path(str(packaged))


def _template_files(root: Path) -> list[str]:
    """Every file of a template, relative to it; caches and dotfiles left out."""
    files = (p.relative_to(root) for p in root.rglob("*") if p.is_file())
    return sorted(
        f.as_posix()
        for f in files
        if "__pycache__" not in f.parts and not any(part.startswith(".") for part in f.parts)
    )


# --- run ------------------------------------------------------------------------------


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
    with ConsoleObserver(_out(), study, history) as observer:
        summary = run_study(study, proposer, judge, options, observer)
    out = _out()
    change = _change(summary.baseline, summary.best)
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
    if not (study.root / STATE_DIR / "ledger.sqlite").exists():
        return []
    return _experiments(study, tag)


# --- status / log / show --------------------------------------------------------------


def _experiments(study: Study, tag: str | None) -> list[Experiment]:
    if not (study.root / STATE_DIR / "ledger.sqlite").exists():
        raise ConfigError(f"{study.root} has no ledger yet — run `ratchet run {study.root}` first")
    ledger = open_ledger(study)
    try:
        return ledger.experiments(check_tag(tag) if tag else None)
    finally:
        ledger.close()


def cmd_status(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    experiments = _experiments(study, args.tag)
    out = _out()
    counts = Counter(e.status for e in experiments)
    kept = [e for e in experiments if e.status in ("baseline", "keep")]
    out.print(f"study {study.name} ({study.metric.name}, {study.metric.goal})")
    if study.run.sandbox == "none":
        out.print('warning: sandbox = "none": candidate code runs with your full permissions')
    if kept:
        base, best = kept[0], kept[-1]
        out.print(f"baseline  {format_metric(base.metric)} (#{base.id})")
        out.print(
            f"incumbent {format_metric(best.metric)} (#{best.id},"
            f" {_change(base.metric, best.metric)}) {best.description}"
        )
    out.print("counts    " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    for line in _budget_lines(experiments):
        out.print(line)
    usage = _usage_line(study, experiments)
    if usage:
        out.print(f"proposer  {usage}")
    for name in sorted({e.tag for e in experiments}):
        pid = lock_holder(study, name)
        running = [e for e in experiments if e.tag == name and e.status == "running"]
        if pid:
            what = (
                f"#{running[-1].id} {running[-1].description}" if running else "between experiments"
            )
            out.print(f"running   {what} (tag {name}, pid {pid})")
    return 0


def _budget_lines(experiments: list[Experiment]) -> list[str]:
    """Where the budget went, and what rejecting and pruning saved (estimates).

    Saved by rejecting: proposals refused before they ran (verify, dedupe;
    not proposer failures) × the median duration of a judged candidate (its
    samples included). Saved by pruning: per pruned experiment, the median
    duration of one sample × (its samples + 1) minus what it ran. Both are
    estimates of what a full run would have cost; they are labelled as such.
    """
    failed = ("crash", "timeout", "pruned")
    spent = sum(e.duration_s for e in experiments if e.status in failed)
    lines = [f"budget    {spent:.1f} s spent on candidates that crashed, timed out or were pruned"]
    judged = [e for e in experiments if e.status in ("keep", "discard", "unconfirmed")]
    measured = judged or [e for e in experiments if e.status in ("baseline", "remeasure")]
    if not measured:
        return lines
    run = median(e.duration_s for e in measured)
    per_sample = median(e.duration_s / max(1, len(e.samples)) for e in measured)
    early = [e for e in experiments if e.status == "rejected" and e.duration_s == 0]
    early = [e for e in early if not e.reason.startswith("proposal:")]
    pruned = [e for e in experiments if e.status == "pruned"]
    cut = sum(max(0.0, per_sample * (len(e.samples) + 1) - e.duration_s) for e in pruned)
    proposals = f"{len(early)} proposal{'' if len(early) == 1 else 's'}"
    runs = f"{len(pruned)} run{'' if len(pruned) == 1 else 's'}"
    lines.append(
        f"saved     ~{len(early) * run:.1f} s by rejecting {proposals} before running,"
        f" ~{cut:.1f} s by stopping {runs} early (estimates from median durations)"
    )
    return lines


def cmd_log(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    experiments = _experiments(study, args.tag)
    if args.json:
        print(json.dumps([_row(e) for e in experiments], indent=2))
        return 0
    table = Table(show_edge=False, header_style="bold")
    spend = any(e.usage.input_tokens or e.usage.output_tokens for e in experiments)
    checked = any(confirmed(e) is not None for e in experiments)
    columns = ("id", "tag", "status", study.metric.name, *(("confirm",) if checked else ()))
    columns += ("time", "commit")
    for column in (*columns, *(("tokens", "cost") if spend else ()), "description"):
        table.add_column(column, no_wrap=column != "description", overflow="fold")
    for e in experiments:
        note = (
            f" ({e.reason.splitlines()[0]})"
            if e.reason and e.status not in ("keep", "discard", "baseline")
            else ""
        )
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
    _out().print(table)
    return 0


_CONFIRM_CELL = {True: "yes", False: "NO", None: ""}  # [confirm] result of a keep


def _row(e: Experiment) -> dict[str, object]:
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
    }


def _spend_cells(e: Experiment) -> tuple[str, str]:
    """The log's tokens and cost cells (blank when nothing was spent or no price is known)."""
    tokens = e.usage.input_tokens + e.usage.output_tokens
    cost = e.usage.cost_usd
    return (f"{tokens:,}" if tokens else "", f"${cost:.4f}" if cost else "")


def _usage_line(study: Study, experiments: list[Experiment]) -> str:
    """Tokens and cost the proposer spent, with the caps when set; "" when nothing was spent."""
    tokens_in = sum(e.usage.input_tokens for e in experiments)
    tokens_out = sum(e.usage.output_tokens for e in experiments)
    if not tokens_in and not tokens_out:
        return ""
    spec = study.proposer
    cost = sum(e.usage.cost_usd for e in experiments)
    token_cap = f" of max {spec.max_total_tokens:,}" if spec.max_total_tokens else ""
    cost_cap = f" of max ${spec.max_cost_usd:g}" if spec.max_cost_usd else ""
    money = f", ${cost:.4f}{cost_cap}" if cost or cost_cap else " (no price set for the model)"
    return (
        f"{tokens_in + tokens_out:,} tokens ({tokens_in:,} in, {tokens_out:,} out){token_cap}"
        + money
    )


def cmd_show(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    exp = _one(study, args.id)
    out = _out()
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


def _one(study: Study, exp_id: int) -> Experiment:
    for exp in _experiments(study, None):
        if exp.id == exp_id:
            return exp
    raise ConfigError(f"no experiment #{exp_id} in {study.root} — see `ratchet log` for ids")


# --- replay / report / doctor -----------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    exp = _one(study, args.id)
    if not exp.commit:
        raise ConfigError(f"experiment #{exp.id} was rejected before it ran; it has no code")
    repo = Repo.discover(study.root)
    tree = repo.worktree(study.root / STATE_DIR / "worktrees" / "replay", exp.commit)
    study_dir = tree.path / study.root.relative_to(repo.root.resolve())
    pinned = {n: (study_dir / n).read_bytes() for n in study.protected_files(study_dir)}
    executor = Executor(study, pinned=pinned)
    logs = study.root / STATE_DIR / "logs" / f"replay-{exp.id}"
    m = executor.measure(Candidate(study_dir, logs, seed=0))
    _out().print(
        f"#{exp.id} replayed: {m.status} {study.metric.name}={format_metric(m.metric)}"
        f" (recorded {exp.status} {format_metric(exp.metric)})"
        + (f" — {m.reason}" if m.reason else "")
    )
    return 0 if m.status == "ok" else 1


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    study = load_study(Path(args.dir))
    experiments = _experiments(study, args.tag)
    out_dir = args.out or study.root / STATE_DIR
    png, md = write_report(
        experiments,
        metric_name=study.metric.name,
        goal=study.metric.goal,
        out_dir=out_dir,
        title=study.name,
    )
    _out().print(f"wrote {png}\nwrote {md}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    out = _out()
    checks: list[tuple[str, bool, str]] = [
        ("python", sys.version_info >= (3, 10), sys.version.split()[0]),
        ("git", shutil.which("git") is not None, shutil.which("git") or "install git"),
    ]
    checks += _doctor_study(Path(args.dir))
    for name, ok, detail in checks:
        out.print(f"{'ok ' if ok else 'BAD'} {name:<10} {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def _doctor_study(path: Path) -> list[tuple[str, bool, str]]:
    if not (path / CONFIG_NAME).is_file():
        return [("study", False, f"no {CONFIG_NAME} in {path.resolve()}")]
    try:
        study = load_study(path)
    except RatchetError as exc:
        return [("study", False, str(exc))]
    results = [("study", True, f"{study.name}: {len(study.editable_files())} editable")]
    results.append(_check("repo", lambda: _repo_line(study)))
    results.append(_check("proposer", lambda: _proposer_line(study)))
    results.append(_check("sandbox", lambda: describe(study.run.sandbox, study.run.hide)))
    if (study.root / STATE_DIR / "ledger.sqlite").exists():
        results.append(_check("ledger", lambda: _ledger_line(study)))
    return results


def _check(name: str, probe: Callable[[], str]) -> tuple[str, bool, str]:
    try:
        return (name, True, probe())
    except RatchetError as exc:
        return (name, False, str(exc))


def _repo_line(study: Study) -> str:
    repo = Repo.discover(study.root)
    return f"{repo.root} at {repo.head()[:7]}"


def _proposer_line(study: Study) -> str:
    if study.proposer.kind == "llm":
        from .proposers.llm import check_endpoint

        return check_endpoint(study)
    if study.proposer.kind == "replay" and not study.proposer.replay:
        return "replay (pass --replay FILE to `ratchet run`)"
    make_proposer(study)
    return study.proposer.kind


def _ledger_line(study: Study) -> str:
    ledger = open_ledger(study)
    try:
        count = len(ledger.experiments())
    finally:
        ledger.close()
    return f"{study.root / STATE_DIR / 'ledger.sqlite'} ({count} experiments)"


def _change(base: float | None, best: float | None) -> str:
    if base is None or best is None or base == 0:
        return "n/a"
    return f"{(best - base) / abs(base) * 100:+.2f}%"
