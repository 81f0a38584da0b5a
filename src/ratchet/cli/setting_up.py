"""``ratchet init`` and ``doctor``: making a study, and checking what it needs."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, RatchetError
from ..execute.sandbox import describe
from ..git.repo import Repo
from ..proposers import make_proposer
from ..run.trying import AGENTS_FILE, agent_instructions
from ..run.workspace import STATE_DIR
from ..store import queries
from ..study import CONFIG_NAME, Study, load_study
from . import common

__all__ = ["TEMPLATES", "cmd_init", "cmd_doctor"]


TEMPLATES = ("sine", "nanogpt", "blank")


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
    out = common.out()
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


def cmd_doctor(args: argparse.Namespace) -> int:
    out = common.out()
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
        from ..proposers.llm import check_endpoint

        return check_endpoint(study)
    if study.proposer.kind == "replay" and not study.proposer.replay:
        return "replay (pass --replay FILE to `ratchet run`)"
    make_proposer(study)
    return study.proposer.kind


def _ledger_line(study: Study) -> str:
    ledger = queries.open_read(study.root)
    try:
        count = len(ledger.experiments())
    finally:
        ledger.close()
    return f"{study.root / STATE_DIR / 'ledger.sqlite'} ({count} experiments)"
