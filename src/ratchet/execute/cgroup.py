"""A cgroup v2 per phase: every process of a command, killed at once, whoever its parent is.

The shepherd's tree kill follows parent links, and a candidate that kills
its shepherd breaks them: its daemons are orphaned to Ratchet or to init.
A cgroup holds on regardless of parents. The runner creates one per phase
below Ratchet's own cgroup (``ratchet-<pid>-<n>``), the shepherd moves the
command into it before the command runs anything (through the same gate that
sets its resource limits), and Ratchet writes ``cgroup.kill`` when the phase
is over and anything is left, then removes the group.

Available where Ratchet may create a child of its own cgroup: root, or a
user whose systemd session delegates its cgroup (``systemd-run --user
--scope``), on Linux >= 5.14 (``cgroup.kill``). ``create`` returns None
elsewhere and the runner falls back on the subreaper. Groups left by a
Ratchet that was itself SIGKILLed are killed and removed by the next one
(``sweep_stale``, once per process).
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from pathlib import Path

__all__ = ["available", "create", "join", "kill", "populated", "remove", "sweep_stale"]

_PREFIX = "ratchet-"
_REMOVE_WAIT_S = 2.0
_counter = itertools.count(1)


@functools.cache
def _base() -> Path | None:
    """Ratchet's own cgroup in the v2 hierarchy, when Ratchet may create groups in it."""
    mount = _cgroup2_mount()
    own = _own_cgroup()
    if mount is None or own is None:
        return None
    base = mount / own.lstrip("/")
    if not (base / "cgroup.procs").is_file() or not os.access(base, os.W_OK | os.X_OK):
        return None
    return base


def _cgroup2_mount() -> Path | None:
    """Where the cgroup2 filesystem is mounted (``/sys/fs/cgroup``, or ``.../unified``)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as file:
            for line in file:
                before, _, after = line.partition(" - ")
                fields = before.split()
                if after.split()[:1] == ["cgroup2"] and len(fields) > 4 and fields[3] == "/":
                    return Path(fields[4].replace("\\040", " "))
    except OSError:
        return None
    return None


def _own_cgroup() -> str | None:
    """This process's path in the v2 hierarchy (the ``0::`` line of /proc/self/cgroup)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as file:
            for line in file:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


@functools.cache
def available() -> bool:
    """Whether a per-phase cgroup can be created here (tried once, then remembered)."""
    base = _base()
    if base is None:
        return False
    probe = base / f"{_PREFIX}{os.getpid()}-0"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        return (probe / "cgroup.kill").exists()
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


def create() -> Path | None:
    """A new empty cgroup for one phase, or None where that is not possible."""
    if not available():
        return None
    base = _base()
    assert base is not None
    sweep_stale()
    path = base / f"{_PREFIX}{os.getpid()}-{next(_counter)}"
    try:
        path.mkdir()
    except OSError:
        return None
    return path


def join(path: Path, pid: int) -> bool:
    """Move process ``pid`` into the group (its future children are born there); False if not."""
    try:
        with open(path / "cgroup.procs", "w", encoding="ascii") as file:
            file.write(str(pid))
    except OSError:
        return False
    return True


def kill(path: Path) -> None:
    """SIGKILL every process in the group (and in groups below it), at once."""
    try:
        with open(path / "cgroup.kill", "w", encoding="ascii") as file:
            file.write("1")
    except OSError:
        pass


def populated(path: Path) -> bool:
    """Whether any live process is left in the group."""
    try:
        with open(path / "cgroup.events", encoding="ascii") as file:
            return "populated 1" in file.read()
    except OSError:
        return False


def remove(path: Path, wait: float = _REMOVE_WAIT_S) -> bool:
    """Kill what is left in the group and remove it; False if it is still busy after ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        if populated(path):
            kill(path)
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


@functools.cache
def sweep_stale() -> int:
    """Kill and remove the groups of Ratchet processes that are gone; how many were removed."""
    base = _base()
    if base is None:
        return 0
    removed = 0
    try:
        names = [entry.name for entry in os.scandir(base) if entry.name.startswith(_PREFIX)]
    except OSError:
        return 0
    for name in names:
        owner = name[len(_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not _running(int(owner)):
            removed += remove(base / name, wait=0.5)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
