"""Steering a running ``ratchet run`` from outside: stop, pause, resume.

A request is a one-word file, ``.ratchet/control/<tag>`` (``stop`` or
``pause``), written atomically by ``ratchet stop|pause|resume`` (or the
dashboard) and read by the loop between experiments. No signals: the running
experiment always finishes and is recorded, and the loop never has to be
interrupted mid-write. ``resume`` removes the file; a run clears a leftover one
when it starts, so a request never outlives the run it was meant for.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Literal

from ..store.atomic import write_atomically

__all__ = ["Request", "CONTROL_DIR", "request", "requested", "clear"]

CONTROL_DIR = "control"  # under .ratchet/
Request = Literal["stop", "pause"]
_KNOWN = ("stop", "pause")


def _path(state_dir: Path, tag: str) -> Path:
    return state_dir / CONTROL_DIR / tag


def request(state_dir: Path, tag: str, what: Request) -> None:
    """Ask the run of ``tag`` to stop or pause at its next check (between experiments)."""
    path = _path(state_dir, tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, what + "\n")


def requested(state_dir: Path, tag: str) -> Request | None:
    """What has been asked of the run of ``tag``, if anything (an unknown word counts as none)."""
    try:
        word = _path(state_dir, tag).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return "stop" if word == "stop" else "pause" if word == "pause" else None


def clear(state_dir: Path, tag: str) -> None:
    """Withdraw any request (``resume``, and a run's start and end)."""
    with contextlib.suppress(FileNotFoundError):
        _path(state_dir, tag).unlink()
