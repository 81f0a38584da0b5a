"""Ratchet as the subreaper of last resort: the orphans of a shepherd that was killed.

While a phase runs, Ratchet is a child subreaper (``set_subreaper``), so
when a candidate kills the shepherd, the shepherd's children are reparented
to Ratchet instead of to init, and ``kill_adopted`` kills them tree by tree
and reaps them. Kept apart from the runner: this is mechanism (prctl,
/proc, waitid); the runner decides when. See ``runner`` for the shepherd.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable

from .proctree import children, descendants, start_time

__all__ = ["PR_SET_CHILD_SUBREAPER", "die_with_parent", "set_subreaper", "kill_adopted"]

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def set_subreaper(prctl: Callable[..., int] | None, on: bool) -> bool:
    """Make this process a child subreaper (or stop); False where that is not possible."""
    if prctl is None:
        return False
    flag, zero = ctypes.c_ulong(int(on)), ctypes.c_ulong(0)
    return prctl(PR_SET_CHILD_SUBREAPER, flag, zero, zero, zero) == 0


def die_with_parent() -> None:
    """Ask the kernel for SIGKILL when our parent dies (Linux; kill -9 included), so a
    process serving Ratchet (a worker process, a Ray node's sample process) never
    outlives it; leave now if the parent died before the request took effect."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)


def kill_adopted(shepherd: int, wait: float) -> None:
    """SIGKILL every tree this process adopted from ``shepherd``, and reap them.

    Adopted orphans are children that started after the shepherd (they
    descend from it); an orphan's own children come here when it dies, so
    this repeats until none is left or ``wait`` has passed.
    """
    since = start_time(shepherd)
    if since is None:
        return
    deadline = time.monotonic() + wait
    _await_zombie(shepherd, deadline)  # its pipes close before its children are reparented
    me = os.getpid()
    while time.monotonic() < deadline:
        adopted = [
            pid for pid in children(me) if pid != shepherd and (start_time(pid) or 0) >= since
        ]
        if not adopted:
            return
        for pid in adopted:
            for victim in (pid, *descendants(pid)):
                try:
                    os.kill(victim, signal.SIGKILL)
                except OSError:
                    pass
        for pid in adopted:
            _reap_soon(pid, deadline)


def _await_zombie(pid: int, deadline: float) -> None:
    """Wait until child ``pid`` has finished exiting (its orphans reparented), without reaping."""
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return
        time.sleep(0.001)


def _reap_soon(pid: int, deadline: float) -> None:
    """Reap a killed child, waiting for it at most until ``deadline``."""
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() >= deadline:
            return
        time.sleep(0.001)
