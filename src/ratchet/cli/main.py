"""The ``ratchet`` command: parse arguments, call into the package, print.

This is the one place that turns a ``RatchetError`` into a one-line message
and exit code 2 (1 when the study itself failed, e.g. its baseline crashed).
Set ``RATCHET_RAISE_ERRORS=1`` to get the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from .. import __version__
from ..errors import ExperimentError, RatchetError
from ..execute.environment import hold_secrets
from . import commands

__all__ = ["main", "entry"]


def entry() -> None:
    """Console-script entry point; secrets leave the environment block first (``hold_secrets``)."""
    hold_secrets()
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ExperimentError as exc:
        if os.environ.get("RATCHET_RAISE_ERRORS"):
            raise
        _report(exc)
        return 1
    except RatchetError as exc:
        if os.environ.get("RATCHET_RAISE_ERRORS"):
            raise
        _report(exc)
        return 2
    except Exception as exc:  # a bug in ratchet: one line here, the traceback in a file
        if os.environ.get("RATCHET_RAISE_ERRORS"):
            raise
        path = Path(tempfile.gettempdir()) / f"ratchet-crash-{os.getpid()}.txt"
        path.write_text(traceback.format_exc(), encoding="utf-8")
        _report(
            RuntimeError(
                f"internal error {type(exc).__name__}: {exc} — this is a bug in"
                f" ratchet; nothing recorded is lost; traceback saved to {path}"
            )
        )
        return 1


def _report(exc: Exception) -> None:
    """One line on stderr; the message is plain text, never rich markup."""
    line = Text("error: ", style="red")
    line.append(str(exc))
    Console(stderr=True, soft_wrap=True).print(line, highlight=False)


def _out() -> Console:
    return Console(soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ratchet", description="Autonomous research loop: keep only what is really better."
    )
    parser.add_argument("--version", action="version", version=f"ratchet {__version__}")
    commands.register(parser.add_subparsers(metavar="COMMAND"))
    return parser
