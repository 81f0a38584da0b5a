"""The ``ratchet`` command: parse arguments, call into the package, print.

This is the one place that turns errors into a one-line message and an exit
code (``EXIT_CODES``, printed by ``ratchet --help``): a ``RatchetError`` is the
user's to fix (2), an ``ExperimentError`` means the study itself failed (1), and
anything else is a bug in ratchet (70, EX_SOFTWARE), so scripts can tell them
apart. Set ``RATCHET_RAISE_ERRORS=1`` to get the traceback instead.
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

__all__ = ["main", "entry", "EXIT_CODES"]

STUDY_FAILED, USAGE, INTERNAL, INTERRUPTED, CLOSED_PIPE = 1, 2, 70, 130, 141
EXIT_CODES = (
    (0, "done (for doctor: every check passed)"),
    (STUDY_FAILED, "the study failed (its baseline crashed, a replay did not measure,"
     " a doctor check is BAD)"),
    (USAGE, "a usage or configuration error: the message says what to fix"),
    (INTERNAL, "an internal error, a bug in ratchet: the traceback is saved to a file"),
    (INTERRUPTED, "stopped by Ctrl-C (`ratchet try`: nothing kept; `ratchet run` records"
     " the experiment it stopped and exits 0)"),
    (CLOSED_PIPE, "the reader of the output went away (`ratchet log --json | head`)"),
)


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
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe fails here, not in Python's flush at exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except SystemExit as exc:  # rich exits 1 on a closed pipe, from inside its except
        if isinstance(exc.__context__, BrokenPipeError):
            return _closed_pipe()
        raise
    except KeyboardInterrupt:  # where a command has no cleaner way to stop (run and try do)
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except ExperimentError as exc:
        if os.environ.get("RATCHET_RAISE_ERRORS"):
            raise
        _report(exc)
        return STUDY_FAILED
    except RatchetError as exc:
        if os.environ.get("RATCHET_RAISE_ERRORS"):
            raise
        _report(exc)
        return USAGE
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
        return INTERNAL


def _closed_pipe() -> int:
    """The reader of stdout left (``| head``): stop quietly, as a Unix tool stopped by SIGPIPE.

    Output still buffered would fail again when Python flushes stdout at exit, so stdout
    is pointed at /dev/null first (the recipe of Python's signal module documentation).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return CLOSED_PIPE


def _report(exc: Exception) -> None:
    """One line on stderr; the message is plain text, never rich markup."""
    line = Text("error: ", style="red")
    line.append(str(exc))
    Console(stderr=True, soft_wrap=True).print(line, highlight=False)


def _out() -> Console:
    return Console(soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ratchet",
        description="Autonomous research loop: keep only what is really better.",
        epilog="exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ratchet {__version__}")
    commands.register(parser.add_subparsers(metavar="COMMAND"))
    return parser
