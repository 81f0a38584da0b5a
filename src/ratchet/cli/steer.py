"""``ratchet note | stop | pause | resume | invalidate``: a human steering a study.

Each writes one small record under ``.ratchet/`` (a ledger row, or the
control file the loop reads between experiments) and returns at once; the
running ``ratchet run`` picks it up before its next experiment.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ..errors import ConfigError
from ..run import control
from ..run.steering import add_note, invalidate
from ..run.workspace import STATE_DIR, check_tag, lock_holder
from ..safetext import printable
from ..study import load_study
from .console import format_metric

__all__ = ["register", "run_state"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the steering subcommands to the parser."""
    p = sub.add_parser("note", help="a note the proposer sees from its next prompt on")
    p.add_argument("text", help="what the proposer should know, in a sentence")
    _dir_tag(p)
    p.set_defaults(func=cmd_note)
    for name, text in (
        ("stop", "finish the running experiment, then exit"),
        ("pause", "wait between experiments until `ratchet resume`"),
        ("resume", "continue a paused run"),
    ):
        p = sub.add_parser(name, help=text)
        _dir_tag(p)
        p.set_defaults(func=cmd_control, action=name)
    p = sub.add_parser("invalidate", help="void a keep; the incumbent falls back")
    p.add_argument("id", type=int)
    p.add_argument("dir", nargs="?", default=".", help="study directory (default: .)")
    p.add_argument("--reason", required=True, help="why the keep is wrong (shown everywhere)")
    p.set_defaults(func=cmd_invalidate)


def _dir_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default=".", help="study directory (default: .)")
    p.add_argument("--tag", default="main", help="the run to steer (default: main)")


def _out() -> Console:
    return Console(soft_wrap=True, markup=False, highlight=False)


def cmd_note(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    note = add_note(study, check_tag(args.tag), args.text)
    running = lock_holder(study, note.tag)
    when = "from its next prompt" if running else "when the tag runs next"
    _out().print(f"note #{note.id} recorded for tag {note.tag}; the proposer sees it {when}")
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    tag = check_tag(args.tag)
    state = study.root / STATE_DIR
    pid = lock_holder(study, tag)
    if args.action == "resume":
        was = control.requested(state, tag)
        control.clear(state, tag)
        _out().print(f"tag {tag}: {'resumed' if was == 'pause' else 'was not paused'}")
        return 0
    if pid is None:
        raise ConfigError(
            f"tag {tag!r} is not running in {study.root} — nothing to {args.action}"
            " (`ratchet status` lists the running tags)"
        )
    control.request(state, tag, args.action)
    done = (
        "will stop after the running experiment"
        if args.action == "stop"
        else "will pause after the running experiment (`ratchet resume` continues)"
    )
    _out().print(f"tag {tag} (pid {pid}) {done}")
    return 0


def cmd_invalidate(args: argparse.Namespace) -> int:
    study = load_study(Path(args.dir))
    exp, best = invalidate(study, args.id, args.reason)
    line = f"#{exp.id} voided ({printable(exp.void or '')})"
    if best is not None:
        line += (
            f"; incumbent of tag {exp.tag} is now #{best.id} ({study.metric.name}"
            f" {format_metric(best.metric)}), ratchet/{exp.tag} at {(best.commit or '')[:7]}"
        )
    _out().print(line)
    return 0


def run_state(study_root: Path, tag: str) -> str:
    """``paused`` or ``stopping`` when such a request is pending, else "" (for ``status``)."""
    asked = control.requested(Path(study_root) / STATE_DIR, tag)
    return {"pause": "paused", "stop": "stopping"}.get(asked or "", "")
