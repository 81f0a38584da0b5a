"""The harness's view of the processes a tool leaves: memory while it runs, survivors after.

The harness makes itself a Linux child subreaper, so every process a tool
orphans is re-parented to the harness instead of to init: "the harness's
descendants" is then exactly the tool's process tree plus whatever it left
behind, and after the tool has exited, any descendant still alive is an
orphan of that tool.

Memory is sampled from ``/proc`` every ``interval`` seconds: the sum of the
resident set sizes of all descendants (a page shared by several processes
counts in each, as ``ps`` shows it), and the largest single process.
Processes that live shorter than the interval can be missed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MemorySampler", "Survivor", "become_subreaper", "descendants", "kill_and_reap",
           "survivors", "uptime"]

PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of the tools become the harness's children (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def descendants(root: int) -> list[int]:
    """Live, non-zombie descendants of ``root`` (``root`` excluded)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None and info[1] != "Z":
                parents[int(entry)] = info[0]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


class MemorySampler:
    """Peak memory of the harness's descendants while a tool runs; a context manager."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_tree = 0
        self.peak_process = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            sizes = [_rss(pid) for pid in descendants(me)]
            self.peak_tree = max(self.peak_tree, sum(sizes))
            self.peak_process = max([self.peak_process, *sizes])
            self.samples += 1
            self._stop.wait(self.interval)


@dataclass(frozen=True)
class Survivor:
    pid: int
    command: str
    marked: bool  # the hostile code recorded it (its own process or its child)


def uptime() -> float:
    """Seconds since boot: the clock of a process's start time in /proc."""
    return float(Path("/proc/uptime").read_text().split()[0])


def _started(pid: int) -> float | None:
    """When a process started, in seconds since boot."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[19]) / os.sysconf("SC_CLK_TCK")


def survivors(mark_dir: Path, tag: str, since: float) -> list[Survivor]:
    """Processes a tool left alive: the harness's descendants, and marked ones anywhere.

    Marked: a pid the hostile code wrote into ``mark_dir``, or a command line
    that carries ``tag`` (a sandbox may hide the directory or renumber pids).
    Either counts only if the process started after ``since`` (seconds since
    boot, taken at launch), so a reused pid is never mistaken for one of them.
    """
    alive = {pid: Survivor(pid, cmdline(pid), False) for pid in descendants(os.getpid())}
    marked = {int(m.name) for m in mark_dir.glob("*")} if mark_dir.is_dir() else set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid not in marked and tag not in cmdline(pid):
            continue
        started = _started(pid)
        if _alive(pid) and started is not None and started >= since - 0.02:
            alive[pid] = Survivor(pid, cmdline(pid), True)
    return sorted(alive.values(), key=lambda s: s.pid)


def kill_and_reap(found: list[Survivor], wait: float = 5.0) -> None:
    """SIGKILL what a tool left behind (only those pids), then reap our zombies."""
    for s in found:
        try:
            os.kill(s.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if not any(_alive(s.pid) for s in found):
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    info = _stat(pid)
    return info is not None and info[1] != "Z"
