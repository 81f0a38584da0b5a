"""``ratchet doctor``: what is installed, reachable and misconfigured, one line per check.

Each check is ``(name, ok, detail)``; a BAD line says how to fix it and makes the exit code 1.
Besides the environment and the study's configuration it checks what a first run trips over:
that each phase's command names a program and script that exist, that the proposer named on
the command line (``--proposer llm --model …``) answers, and that no tag is stuck on a
baseline that failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from ..errors import RatchetError
from ..execute.sandbox import describe
from ..git.repo import Repo
from ..models import Experiment
from ..proposers import make_proposer, spec_for
from ..removal import remove_tree
from ..run.workspace import ABANDONED_DIR, IN_PLACE, STATE_DIR
from ..safetext import counted, printable
from ..store import queries
from ..study import CONFIG_NAME, Study, load_study

__all__ = ["register", "cmd_doctor", "command_problem"]

Check = tuple[str, bool, str]
_SHELL = set(";&|<>$`(){}*?~")  # a shell line, not one program: left to the shell to judge
_INTERPRETERS = ("python", "sh", "bash", "node", "Rscript", "julia", "perl", "ruby")


def register(sub: argparse._SubParsersAction, proposers: Sequence[str]) -> None:  # type: ignore[type-arg]
    """Add ``doctor`` to the parser; ``proposers`` are the names ``run --proposer`` takes."""
    p = sub.add_parser("doctor", help="what is installed, reachable, misconfigured")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument(
        "--proposer", action="append", choices=proposers,
        help="check this proposer as `ratchet run --proposer` would use it (repeatable)",
    )
    p.add_argument("--model", help="with --proposer llm: the model to ask the endpoint for")
    p.add_argument("--replay", type=Path, help="with --proposer replay: its JSONL file")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    width = None if sys.stdout.isatty() else 200  # piped output is not cut at 80 columns
    out = Console(soft_wrap=True, markup=False, highlight=False, width=width)
    checks: list[Check] = [
        ("python", sys.version_info >= (3, 10), sys.version.split()[0]),
        ("git", shutil.which("git") is not None, shutil.which("git") or "install git"),
    ]
    checks += _doctor_study(Path(args.dir), args)
    for name, ok, detail in checks:
        out.print(f"{'ok ' if ok else 'BAD'} {name:<10} {printable(detail)}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def _doctor_study(path: Path, args: argparse.Namespace) -> list[Check]:
    if not (path / CONFIG_NAME).is_file():
        return [("study", False, f"no {CONFIG_NAME} in {path.resolve()}")]
    try:
        study = load_study(path)
    except RatchetError as exc:
        return [("study", False, str(exc))]
    editable = len(study.editable_files())
    results: list[Check] = [("study", True, f"{study.name}: {editable} editable")]
    results.append(_commands(study))
    results.append(_check("repo", lambda: _repo_line(study)))
    results.append(_check("proposer", lambda: _proposer_line(study, args)))
    results.append(_check("sandbox", lambda: describe(study.run.sandbox, study.run.hide)))
    if (study.root / STATE_DIR / "ledger.sqlite").exists():
        results.append(_check("ledger", lambda: _ledger_line(study)))
        with contextlib.suppress(RatchetError):  # a damaged ledger is the line above
            results += _failed_baselines(queries.experiments(study.root))
    return results + _leftovers(study.root / STATE_DIR / ABANDONED_DIR)


# --- the study's commands ---------------------------------------------------------------


def _commands(study: Study) -> Check:
    """Every phase's command names a program on PATH and a script in the study."""
    phases = {
        "[run] command": study.run.command,
        "[run] smoke": study.run.smoke,
        "[evaluate] command": study.evaluate.command if study.evaluate else None,
        "[confirm] command": study.confirm.command if study.confirm else None,
    }
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    given = {key: command for key, command in phases.items() if command}
    for key, command in given.items():
        problem = command_problem(command, study.root, search)
        if problem:
            return ("commands", False, f"{key} `{command}`: {problem} — fix it in {CONFIG_NAME}")
    return ("commands", True, "; ".join(f"`{c}`" for c in given.values()) + " found")


def command_problem(command: str, cwd: Path, search: str) -> str | None:
    """Why a phase's command cannot start (no such program, no such script), or None.

    ``search`` is the PATH the phase gets (Ratchet's own Python first, as in
    ``execute.phases``). A line with shell syntax (pipes, ``&&``, variables) is
    not judged: only the shell knows what it runs.
    """
    if _SHELL & set(command):
        return None
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"cannot be read as a command line ({exc})"
    while words and "=" in words[0] and not words[0].startswith("="):
        words = words[1:]  # NAME=value before the program
    if not words:
        return None
    program = words[0]
    if "/" in program:
        found = (cwd / program).expanduser()
        if not (found.is_file() and os.access(found, os.X_OK)):
            return f"{program} is not an executable file in {cwd}"
    elif shutil.which(program, path=search) is None:
        return f"no program {program} on PATH"
    script = _script(words)
    if script is not None and not (cwd / script).is_file():
        return f"no file {script} in {cwd}"
    return None


def _script(words: list[str]) -> str | None:
    """The script an interpreter is told to run (``python train.py`` → ``train.py``)."""
    if not Path(words[0]).name.startswith(_INTERPRETERS):
        return None
    for word in words[1:]:
        if word in ("-m", "-c", "-e", "-"):  # a module or inline code, not a file
            return None
        if not word.startswith("-"):
            return word
    return None


# --- the proposer, the repository, the ledger ----------------------------------------------


def _check(name: str, probe: Callable[[], str]) -> Check:
    try:
        return (name, True, probe())
    except RatchetError as exc:
        return (name, False, str(exc))


def _repo_line(study: Study) -> str:
    repo = Repo.discover(study.root)
    return f"{repo.root} at {repo.head()[:7]}"


def _proposer_line(study: Study, args: argparse.Namespace) -> str:
    """The proposer(s) named with --proposer, else every configured one ([[proposer]]
    tables: each with its own settings), as ``run`` builds them; an llm proposer's
    endpoint is asked for its models."""
    specs = [spec_for(study, kind) for kind in args.proposer] if args.proposer else study.proposers
    lines = []
    for spec in specs:
        own = study.model_copy(update={"proposer": spec})
        if spec.kind == "llm":
            from ..proposers.llm import check_endpoint

            lines.append(check_endpoint(own, args.model))
        elif spec.kind == "replay" and not (args.replay or spec.replay):
            lines.append("replay (pass --replay FILE to `ratchet run`)")
        else:
            make_proposer(own, spec.kind, args.replay)
            lines.append(spec.kind)
    return "; ".join(lines)


def _ledger_line(study: Study) -> str:
    ledger = queries.open_read(study.root)
    try:
        count = len(ledger.experiments())
    finally:
        ledger.close()
    return f"{study.root / STATE_DIR / 'ledger.sqlite'} ({counted(count, 'experiment')})"


def _failed_baselines(experiments: list[Experiment]) -> list[Check]:
    """A tag whose baseline failed and never succeeded since: nothing can be compared on it."""
    tags: dict[str, list[Experiment]] = {}
    for e in experiments:
        tags.setdefault(e.tag, []).append(e)
    found = []
    for tag, rows in sorted(tags.items()):
        attempts = [e for e in rows if e.parent is None and e.description == "baseline"]
        if not attempts or any(e.status == "baseline" for e in attempts):
            continue
        last = attempts[-1]
        if last.status == "running":
            continue
        why = printable(last.reason.splitlines()[0]) if last.reason else "no reason recorded"
        found.append((
            "baseline",
            False,
            f"tag {tag}: the baseline (#{last.id}) ended with {last.status}: {why} — fix the"
            f" study (`ratchet show {last.id} --log`), then `ratchet run --tag {tag}` again",
        ))
    return found


# --- abandoned worktrees ------------------------------------------------------------------


def _leftovers(abandoned: Path) -> list[Check]:
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
