"""The process tree under a shepherd, read from /proc: the few facts the runner needs.

Kept apart from the runner so the supervising loop reads as policy (when to
count, when to kill) and this module as mechanism (how to find the processes).
Every function degrades to "nothing found" where /proc is missing.
"""

from __future__ import annotations

import os

__all__ = [
    "outrank_the_tree",
    "machine_processes",
    "group_exists",
    "descendants",
    "children",
    "ppid",
    "start_time",
]


def outrank_the_tree() -> None:
    """Take a real-time priority when allowed (root): a fork bomb must not starve its killer.

    Under CFS every one of thousands of runnable bomb processes gets the same
    share as the shepherd, which then needs seconds to count and kill them.
    The command was started before this, so it keeps the normal policy; the
    shepherd sleeps in ``poll`` almost all the time. Without the privilege,
    ``RLIMIT_NPROC`` bounds the bomb instead.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    except (OSError, AttributeError):
        pass


def machine_processes() -> int:
    """How many processes the machine has (an upper bound for the tree); 0 without /proc."""
    try:
        return sum(name.isdigit() for name in os.listdir("/proc"))
    except OSError:
        return 0


def group_exists(pgid: int) -> bool:
    """Whether any process is left in the command's group (the fallback's only view)."""
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


def descendants(root: int) -> list[int]:
    """Every process below ``root``, from the ppid field of /proc/<pid>/stat; [] without /proc."""
    tree = _children_map()
    found: list[int] = []
    todo = [root]
    while todo:
        for child in tree.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def children(parent: int) -> list[int]:
    """The direct children of ``parent`` (zombies included); [] without /proc."""
    return _children_map().get(parent, [])


def _children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return tree
    for name in names:
        if name.isdigit():
            parent = ppid(name)
            if parent is not None:
                tree.setdefault(parent, []).append(int(name))
    return tree


def ppid(pid: str) -> int | None:
    """The parent pid from /proc/<pid>/stat; the command name may hold spaces and parens."""
    fields = _stat_fields(pid)
    try:
        return int(fields[1]) if fields else None
    except (ValueError, IndexError):
        return None


def start_time(pid: int | str) -> int | None:
    """When the process started, in clock ticks since boot (comparable between processes)."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        return data[data.rindex(b")") + 2 :].split()
    except (OSError, ValueError):
        return None
