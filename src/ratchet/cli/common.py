"""What every command shares: the study directory and tag arguments, plain output, reading
the ledger through the read model, and the figures they print."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from ..errors import ConfigError
from ..models import Experiment
from ..run.workspace import check_tag
from ..store import queries
from ..study import Study

__all__ = ["dir_tag", "out", "experiments", "one", "change"]


def dir_tag(p: argparse.ArgumentParser, default: str | None = "main") -> None:
    p.add_argument("dir", nargs="?", default=".", help="study directory (default: .)")
    p.add_argument("--tag", default=default, help="run name; rerun a tag to resume it")


def out() -> Console:
    """Plain output: descriptions and reasons come from proposers and are never markup."""
    width = None if sys.stdout.isatty() else 200  # piped output is not cut at 80 columns
    return Console(soft_wrap=True, markup=False, highlight=False, width=width)


def experiments(study: Study, tag: str | None) -> list[Experiment]:
    """Read through the shared read model (a read-only open: looking changes nothing)."""
    return queries.experiments(study.root, check_tag(tag) if tag else None)


def one(study: Study, exp_id: int) -> Experiment:
    for exp in experiments(study, None):
        if exp.id == exp_id:
            return exp
    raise ConfigError(f"no experiment #{exp_id} in {study.root} — see `ratchet log` for ids")


def change(base: float | None, best: float | None) -> str:
    pct = queries.change_pct(base, best)
    return "n/a" if pct is None else f"{pct:+.2f}%"
