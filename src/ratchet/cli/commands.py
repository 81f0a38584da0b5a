"""The ``ratchet`` subcommands, wired into argparse; one module per group of commands.

Commands only parse, call into the package, and print; each returns the exit
code. ``setting_up`` (init, doctor), ``running`` (run, try, replay) and
``reading`` (status, log, show, report) hold them; ``cli.main`` turns errors
into messages.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..run.workspace import STATE_DIR
from .common import dir_tag
from .reading import cmd_log, cmd_report, cmd_show, cmd_status
from .running import cmd_replay, cmd_run, cmd_try
from .setting_up import TEMPLATES, cmd_doctor, cmd_init

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add every subcommand to the parser."""
    p = sub.add_parser("init", help="scaffold a study from a template")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--template", choices=TEMPLATES, default="sine")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="run the research loop")
    dir_tag(p)
    p.add_argument("--proposer", choices=("mutate", "llm", "agent", "replay"))
    p.add_argument("--replay", type=Path, help="JSONL file of proposals (--proposer replay)")
    p.add_argument("--model", help="model name for the llm proposer")
    p.add_argument("--max-experiments", type=int, help="stop after N experiments (0: baseline)")
    p.add_argument("--hours", type=float, help="stop starting experiments after H hours")
    p.add_argument("--workers", type=int, default=1, help="parallel experiments (1 for now)")
    p.add_argument("--budget", type=float, help="override [run] budget (seconds)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("try", help="measure your edits to the study; keep (commit) or restore")
    dir_tag(p)
    p.add_argument("-m", "--message", required=True, help="what changed: the commit message")
    p.set_defaults(func=cmd_try)

    for name, func, text in (
        ("status", cmd_status, "incumbent, counts, running experiment"),
        ("log", cmd_log, "one row per experiment"),
    ):
        p = sub.add_parser(name, help=text)
        dir_tag(p, default=None)
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
    dir_tag(p, default=None)
    p.add_argument("--out", type=Path, help=f"output directory (default DIR/{STATE_DIR})")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("doctor", help="what is installed, reachable, misconfigured")
    p.add_argument("dir", nargs="?", default=".")
    p.set_defaults(func=cmd_doctor)
