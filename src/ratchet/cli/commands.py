"""One function per ``ratchet`` subcommand; each returns the exit code.

Commands only parse, call into the package, and print. ``register`` wires
them into argparse; ``cli.main`` turns errors into messages.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..decide.judge import make_judge
from ..errors import ConfigError, RatchetError
from ..execute.phases import Candidate, Executor
from ..execute.sandbox import describe, warning
from ..git.repo import Repo
from ..models import ROUTINE, Experiment, shown_status
from ..proposers import make_proposer
from ..removal import remove_tree
from ..run.loop import RunOptions, run_study
from ..run.trying import AGENTS_FILE, agent_instructions, format_line, try_working_tree
from ..run.workspace import (
    ABANDONED_DIR,
    IN_PLACE,
    STATE_DIR,
    check_tag,
    fresh_worktree,
    lock_holder,
)
from ..safetext import printable
from ..store import queries
from ..store.journal import confirmed
from ..study import CONFIG_NAME, Study, load_study
from ..ui import command as ui
from . import steer
from .console import ConsoleObserver, format_metric

__all__ = ["register"]

TEMPLATES = ("sine", "nanogpt", "blank", "sort", "prompt", "circle_packing")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add every subcommand to the parser."""
    p = sub.add_parser("init", help="scaffold a study from a template")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--template", choices=TEMPLATES, default="sine")
    p.add_argument(
        "--from", dest="peer", nargs=2, metavar=("PEER", "SRC"),
        help="port an example of a peer tool: openevolve or shinka, and its directory",
    )
    p.add_argument("--metric", help="with --from: the evaluator's key to maximize (combined_score)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="run the research loop")
    _dir_tag(p)
    p.add_argument(
        "--proposer",
        action="append",
        choices=("mutate", "sweep", "llm", "agent", "replay"),
        help="repeat it to let several take turns (a bandit on keeps per second)",
    )
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
            p.add_argument(
                "--tree", action="store_true", help="draw the lineage: children under parents"
            )
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

    steer.register(sub)
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
    if args.peer is not None:
        return _init_from_peer(args)
    if args.metric is not None:
        raise ConfigError("--metric goes with --from PEER SRC; a template names its own metric")
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


def _init_from_peer(args: argparse.Namespace) -> int:
    """``init --from openevolve|shinka SRC``: the peer's example as a study (ratchet.peers)."""
    from ratchet.peers import PEERS, port

    peer, src = args.peer
    if peer not in PEERS:
        raise ConfigError(f"--from {peer}: unknown peer — use one of {', '.join(PEERS)}")
    metric = args.metric or "combined_score"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-/]*", metric):
        raise ConfigError(f"--metric {metric!r}: use a name of letters, digits and _ . - /")
    target = Path(args.dir)
    if (target / AGENTS_FILE).exists():
        raise ConfigError(f"{target / AGENTS_FILE} already exists — choose an empty directory")
    source = port(peer, Path(src), target, metric)
    (target / AGENTS_FILE).write_text(agent_instructions(load_study(target)), encoding="utf-8")
    committed = Repo.init_if_needed(target, f"ratchet init --from {peer}")
    out = _out()
    out.print(f"ported the {source.peer.title} example {src} to {target.resolve()}")
    if not committed:
        out.print("commit it before running: git add -A && git commit -m 'add study'")
    runs = source.max_iterations or 10
    out.print(f"next: ratchet run {args.dir} --max-experiments {runs}")
    return 0


def _template_root() -> Path:
    """Templates are the repository's examples/ (a source checkout or editable install)."""
    here = Path(__file__).resolve().parents[3] / "examples"
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
    weaker = warning(study.run.sandbox)
    if weaker:
        _out().print(weaker)
    with ConsoleObserver(_out(), study, history) as observer:
        summary = run_study(study, proposer, judge, options, observer)
    out = _out()
    change = _change(summary.baseline, summary.best)
    out.print(
        f"tag {summary.tag}: {summary.ran} experiments this run, {summary.kept} kept in all;"
        f" {study.metric.name} {format_metric(summary.baseline)} → {format_metric(summary.best)}"
        f" ({change}); stopped: {printable(summary.stopped)}"
    )
    out.print(f"results: {study.root / STATE_DIR / 'results.tsv'}   branch: ratchet/{summary.tag}")
    return 0


def cmd_try(args: argparse.Namespace) -> int:
    """One line on stdout (see ``trying.format_line``), exit 0 whatever the verdict."""
    study = load_study(Path(args.dir))
    tag = check_tag(args.tag)
    judge = make_judge(study.decision)
    _stop_on_signals()
    weaker = warning(study.run.sandbox)
    if weaker:
        print(weaker, file=sys.stderr)  # stdout carries the one result line
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
    return _experiments(study, tag)


# --- status / log / show --------------------------------------------------------------


def _experiments(study: Study, tag: str | None) -> list[Experiment]:
    """Read through the shared read model (a read-only open: looking changes nothing)."""
    return queries.experiments(study.root, check_tag(tag) if tag else None)


def cmd_status(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    experiments = _experiments(study, args.tag)
    out = _out()
    figures = queries.overview(experiments)
    counts = figures.counts
    out.print(f"study {study.name} ({study.metric.name}, {study.metric.goal})")
    weaker = warning(study.run.sandbox)
    if weaker:
        out.print(weaker)
    base, best = figures.baseline, figures.incumbent
    if base is not None and best is not None:
        out.print(f"baseline  {format_metric(base.metric)} (#{base.id})")
        out.print(
            f"incumbent {format_metric(best.metric)} (#{best.id},"
            f" {_change(base.metric, best.metric)}) {printable(best.description)}"
        )
    for e in experiments:
        if e.void is not None:
            out.print(f"void      #{e.id} {printable(e.description)} — {printable(e.void)}")
    out.print("counts    " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    for line in queries.budget_lines(figures):
        out.print(line)
    spec = study.proposer
    usage = queries.usage_line(
        figures, max_tokens=spec.max_total_tokens, max_cost_usd=spec.max_cost_usd
    )
    if usage:
        out.print(f"proposer  {usage}")
    members = queries.by_proposer(experiments)
    if len(members) > 1:  # an ensemble, or several runs with different proposers
        for who, (runs, keeps, seconds, dollars) in members.items():
            cost = f", ${dollars:.2f}" if dollars else ""
            out.print(f"  {who:<8} {keeps} keeps of {runs} experiments, {seconds:.1f} s{cost}")
    for name in sorted({e.tag for e in experiments}):
        pid = lock_holder(study, name)
        running = [e for e in figures.running if e.tag == name]
        if pid:
            what = (
                f"#{running[-1].id} {printable(running[-1].description)}"
                if running
                else "between experiments"
            )
            state = steer.run_state(study.root, name)
            out.print(f"running   {what} (tag {name}, pid {pid}){f' — {state}' if state else ''}")
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    experiments = _experiments(study, args.tag)
    if args.json:
        print(json.dumps(queries.rows(experiments), indent=2))
        return 0
    if args.tree:
        _print_tree(experiments, study.metric.name)
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
            f" ({printable(e.reason.splitlines()[0])})"
            if e.reason and e.status not in ROUTINE
            else ""
        )
        table.add_row(
            str(e.id),
            e.tag,
            shown_status(e),
            format_metric(e.metric),
            *((_CONFIRM_CELL[confirmed(e)],) if checked else ()),
            f"{e.duration_s:.1f}s",
            (e.commit or "")[:7],
            *(_spend_cells(e) if spend else ()),
            printable(e.description) + note + (f" [void: {printable(e.void)}]" if e.void else ""),
        )
    _out().print(table)
    return 0


def _print_tree(experiments: list[Experiment], metric: str) -> None:
    """``log --tree``: one line per experiment, indented under the one it was built on."""
    out = _out()
    for depth, e in queries.lineage(experiments):
        lead = "  " * (depth - 1) + "└─ " if depth else ""
        value = f" {metric} {format_metric(e.metric)}" if e.metric is not None else ""
        where = f" [island {e.island}]" if e.island is not None else ""
        line = f"{lead}#{e.id} {e.status}{value}{where}  {printable(e.description)}"
        out.print(line, markup=False, highlight=False, soft_wrap=True)


_CONFIRM_CELL = {True: "yes", False: "NO", None: ""}  # [confirm] result of a keep


def _spend_cells(e: Experiment) -> tuple[str, str]:
    """The log's tokens and cost cells (blank when nothing was spent or no price is known)."""
    tokens = e.usage.input_tokens + e.usage.output_tokens
    cost = e.usage.cost_usd
    return (f"{tokens:,}" if tokens else "", f"${cost:.4f}" if cost else "")


def cmd_show(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    exp = _one(study, args.id)
    out = _out()
    out.print(
        f"#{exp.id} {shown_status(exp)}  {study.metric.name}={format_metric(exp.metric)}"
        f"  tag {exp.tag}  {exp.duration_s:.1f}s"
    )
    out.print(f"commit {exp.commit or '—'}  parent {exp.parent or '—'}")
    out.print(f"description: {printable(exp.description)}")
    if exp.rationale:
        out.print(f"rationale: {printable(exp.rationale, keep_lines=True)}")
    if exp.reason:
        out.print(f"reason: {printable(exp.reason)}")
    if exp.void is not None:
        out.print(f"void: {printable(exp.void)} (invalidated; no longer the incumbent)")
    if exp.extras:
        out.print("extras: " + ", ".join(f"{k}={v:g}" for k, v in sorted(exp.extras.items())))
    if args.diff and exp.commit and exp.parent:
        sys.stdout.write(Repo.discover(study.root).diff(exp.parent, exp.commit))
    if args.log:
        for path in sorted(Path(exp.log_dir).rglob("*.log")) if exp.log_dir else []:
            out.print(f"--- {path.relative_to(exp.log_dir)}")
            sys.stdout.write(printable(path.read_text("utf-8", "replace"), keep_lines=True))
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
    where = study.root / STATE_DIR / "worktrees" / "replay"
    tree = fresh_worktree(repo, where, exp.commit, ConsoleObserver(_out(), study, []))
    study_dir = tree.path / study.root.relative_to(repo.root.resolve())
    pinned = {n: (study_dir / n).read_bytes() for n in study.protected_files(study_dir)}
    executor = Executor(study, pinned=pinned)
    logs = study.root / STATE_DIR / "logs" / f"replay-{exp.id}"
    m = executor.measure(Candidate(study_dir, logs, seed=0))
    _out().print(
        f"#{exp.id} replayed: {m.status} {study.metric.name}={format_metric(m.metric)}"
        f" (recorded {exp.status} {format_metric(exp.metric)})"
        + (f" — {printable(m.reason)}" if m.reason else "")
    )
    return 0 if m.status == "ok" else 1


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report

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
        out.print(f"{'ok ' if ok else 'BAD'} {name:<10} {printable(detail)}")
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
    return results + _leftovers(study.root / STATE_DIR / ABANDONED_DIR)


def _leftovers(abandoned: Path) -> list[tuple[str, bool, str]]:
    """Worktrees a run moved aside: deleted now if possible, else how a person can."""
    if not abandoned.is_dir():
        return []
    stuck: list[tuple[Path, str]] = []
    for path in sorted(p for p in abandoned.iterdir() if p.suffix != ".reason"):
        try:
            remove_tree(path)
        except OSError as exc:
            stuck.append((path, str(exc)))
            continue
        path.with_name(path.name + ".reason").unlink(missing_ok=True)
    stuck += _left_in_place(abandoned)
    if not stuck:
        with contextlib.suppress(OSError):
            abandoned.rmdir()  # only when empty
        return []
    path, why = stuck[0]
    quoted = shlex.quote(str(path))
    more = f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""
    return [
        (
            "leftovers",
            False,
            f"cannot remove the abandoned worktree {path}{more}: {why} — as root run"
            f" `chattr -R -i -a {quoted} && rm -rf {quoted}`, then rerun ratchet doctor",
        )
    ]


def _left_in_place(abandoned: Path) -> list[tuple[Path, str]]:
    """Worktrees a run could not even move (never deleted here: a run may use the name
    again once they are fixed); a note whose worktree is gone is dropped."""
    found = []
    for note in sorted(abandoned.glob(f"*{IN_PLACE}")):
        where, _, why = note.read_text(encoding="utf-8", errors="replace").partition("\n")
        if Path(where).exists():
            found.append((Path(where), why.strip()))
        else:
            note.unlink(missing_ok=True)
    return found


def _check(name: str, probe: Callable[[], str]) -> tuple[str, bool, str]:
    try:
        return (name, True, probe())
    except RatchetError as exc:
        return (name, False, str(exc))


def _repo_line(study: Study) -> str:
    repo = Repo.discover(study.root)
    return f"{repo.root} at {repo.head()[:7]}"


def _proposer_line(study: Study) -> str:
    """Each configured proposer ([[proposer]] tables: every member, each with its settings)."""
    lines = []
    for spec in study.proposers:
        own = study.model_copy(update={"proposer": spec})
        if spec.kind == "llm":
            from ..proposers.llm import check_endpoint

            lines.append(check_endpoint(own))
        elif spec.kind == "replay" and not spec.replay:
            lines.append("replay (pass --replay FILE to `ratchet run`)")
        else:
            make_proposer(own, spec.kind)
            lines.append(spec.kind)
    return "; ".join(lines)


def _ledger_line(study: Study) -> str:
    ledger = queries.open_read(study.root)
    try:
        count = len(ledger.experiments())
    finally:
        ledger.close()
    return f"{study.root / STATE_DIR / 'ledger.sqlite'} ({count} experiments)"


def _change(base: float | None, best: float | None) -> str:
    pct = queries.change_pct(base, best)
    return "n/a" if pct is None else f"{pct:+.2f}%"
