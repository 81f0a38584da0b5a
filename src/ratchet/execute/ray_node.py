"""The node's half of the Ray backend: one sample, run here by the local ``Executor``.

A Ray task (``run_sample``) receives plain data: the executor's spec
(``phases.plain_spec``: the study's keys, the pinned files, the budget), the
candidate's files named by their content hash, and where to send what it
prints. It then runs the very code ``ratchet run`` runs locally (the
shepherd, the sandbox, the sealed evaluate phase) in a scratch directory::

    <scratch>/files/<hash>/   the candidate's files, written once per node and hash
    <scratch>/runs/<random>/  one sample: study/ (a fresh copy it may write to), logs/

Under ``bwrap`` the study's repository is concealed as in a local run: the
driver's, where the node sees it (``_study_root``), else the cache of sets.
``<scratch>`` is ``$RATCHET_RAY_SCRATCH``, else ``ratchet-ray`` in the
node's temporary directory. A sample's directory is removed when it ends;
cached file sets stay (a study's candidates share most of them, and each is
small next to a checkpoint): the 64 most recently used, and any used in the
last ten minutes.

The phases run in a process of their own forked from the Ray worker (see
``run_sample`` for why). What they print goes back to the driver as it
happens (``Streamer``): a thread pushes batches of events to the driver's
mailbox actor every ``FLUSH_S`` and learns from the reply whether the
driver's pruner asked for a stop; if so the sample process gets SIGINT (the
runner's Ctrl-C path: the whole tree is stopped) and the sample ends
``pruned`` with the pruner's reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..metrics import ProgressPoint
from ..observer import Observer
from ..removal import remove_tree
from .base import call
from .orphans import die_with_parent
from .phases import Candidate, Executor, Measurement

__all__ = [
    "FLUSH_S",
    "SCRATCH_ENV",
    "FileSet",
    "collect_files",
    "files_digest",
    "cached_tree",
    "run_sample",
    "Streamer",
]

SCRATCH_ENV = "RATCHET_RAY_SCRATCH"
FLUSH_S = 0.05  # how often a running sample sends its lines (and hears of a stop)
KEEP_SETS = 64  # file sets a node keeps cached...
IDLE_S = 600.0  # ...beyond which one unused for this long is removed
_SKIPPED = (".git", ".ratchet", "__pycache__")

FileSet = dict[str, tuple[bytes, bool]]  # study-relative path -> (content, executable)


def scratch_root() -> Path:
    base = os.environ.get(SCRATCH_ENV) or os.path.join(tempfile.gettempdir(), "ratchet-ray")
    return Path(base)


def collect_files(study_dir: Path) -> FileSet:
    """The candidate's files as the local executor would see them: its study directory.

    Regular files only; ``.git``, ``.ratchet`` and ``__pycache__`` stay behind.
    """
    found: FileSet = {}
    for top, dirs, files in os.walk(study_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED)
        for name in sorted(files):
            path = os.path.join(top, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                rel = os.path.relpath(path, study_dir).replace(os.sep, "/")
                with open(path, "rb") as handle:
                    found[rel] = (handle.read(), bool(info.st_mode & stat.S_IXUSR))
    return found


def files_digest(files: Mapping[str, tuple[bytes, bool]]) -> str:
    """The content address of a file set: sha256 over paths, modes and contents (pure)."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        data, executable = files[rel]
        header = f"{rel}\0{int(executable)}\0{len(data)}\0".encode()
        digest.update(header)
        digest.update(data)
    return digest.hexdigest()


def cached_tree(digest: str, fetch: Callable[[], FileSet]) -> Path:
    """This node's copy of the file set ``digest``; ``fetch`` is called only on a miss.

    Written into a temporary directory and renamed into place, so a reader
    never sees half a set and two tasks racing for it both end with one copy.
    """
    target = scratch_root() / "files" / digest
    if target.is_dir():
        os.utime(target)  # recently used: kept by ``_evict``
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=target.parent))
    try:
        for rel, (data, executable) in fetch().items():
            path = partial / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if executable:
                path.chmod(0o755)
        try:
            os.rename(partial, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        _discard(partial)
    _evict(target.parent, keep=KEEP_SETS, idle_s=IDLE_S)
    return target


def _discard(path: Path) -> None:
    """Remove a scratch tree (what a candidate wrote, too) the one way Ratchet removes
    trees (``removal.remove_tree``: no symlink followed); what cannot go stays."""
    with contextlib.suppress(OSError):
        remove_tree(path)


def _evict(cache: Path, *, keep: int, idle_s: float) -> None:
    """Remove file sets beyond the ``keep`` most recently used that nobody used for ``idle_s``.

    A night of candidates would otherwise fill the node's disk; a set in use
    was touched when its sample started, so it is never the one removed.
    """
    sets = []
    for entry in os.scandir(cache):
        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
            sets.append((entry.stat().st_mtime, entry.path))
    now = time.time()
    for used, path in sorted(sets, reverse=True)[keep:]:
        if now - used > idle_s:
            _discard(Path(path))


class Streamer:
    """Queues a sample's events for the driver and relays the driver's stop request.

    Events: ``("node", ray_node_id)``, ``("phase", name, budget)``, ``("line",
    text)``, ``("point", ProgressPoint)``. A thread sends them in batches every
    ``FLUSH_S`` through ``push`` (the mailbox actor's ``push``), whose answer is
    the driver's stop reason, if any; the first one is handed to ``on_stop``.
    """

    def __init__(
        self, push: Callable[[list[tuple[Any, ...]]], str | None], on_stop: Callable[[], None]
    ) -> None:
        self._push = push
        self._on_stop = on_stop
        self._events: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0  # events pushed to the mailbox; the rest travel with the result
        self.stop_reason: str | None = None

    def add(self, event: tuple[Any, ...]) -> None:
        with self._lock:
            self._events.append(event)

    def _take(self) -> list[tuple[Any, ...]]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def start(self) -> None:
        self._thread = threading.Thread(target=self._flush_loop, name="ratchet-stream", daemon=True)
        self._thread.start()

    def finish(self) -> list[tuple[Any, ...]]:
        """Stop flushing; the events not yet sent (they go back with the result)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        return self._take()

    def _flush_loop(self) -> None:
        while not self._done.wait(FLUSH_S):
            events = self._take()
            try:
                reason = self._push(events)
            except Exception:  # the driver is gone: Ray ends this task soon enough
                with self._lock:
                    self._events[:0] = events
                continue
            self.sent += len(events)
            if reason and self.stop_reason is None:
                self.stop_reason = reason
                self._on_stop()

    def verdict(self, m: Measurement | None) -> Measurement | None:
        """A sample the driver stopped is ``pruned`` with the driver's reason."""
        if m is not None and self.stop_reason and m.status in ("interrupted", "pruned"):
            return replace(m, status="pruned", reason=self.stop_reason)
        return m


def run_sample(
    kind: str,
    spec: Mapping[str, Any],
    digest: str,
    fetch: Callable[[], FileSet],
    seed: int,
    commit: str,
    exp_id: int,
    push: Callable[[list[tuple[Any, ...]]], str | None],
    node: str = "",
) -> dict[str, Any]:
    """One smoke, measure or confirm of a candidate on this node (the Ray task's body).

    The phases run in a *sample process* forked from this Ray worker
    (``_sample_process``), never in the worker itself: a Ray worker that
    leaves kills its own children at once (SIGKILL), and one that dies takes
    its children along (``PR_SET_PDEATHSIG``), so the shepherds are the
    worker's grandchildren, see their control pipe close and kill their
    trees, as when ``ratchet run`` is killed locally. The sample process has
    one thread (the worker has many), and a stop is a SIGINT to it: the
    runner's Ctrl-C path. Returns the ``Measurement`` (None for a study
    without smoke), the phases' logs as bytes, the events not streamed yet,
    how many were, and this node's host name.
    """
    root = cached_tree(digest, fetch)
    runs = scratch_root() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    here = Path(tempfile.mkdtemp(prefix="sample-", dir=runs))
    try:
        study_dir = here / "study"
        shutil.copytree(root, study_dir, symlinks=True)
        executor = Executor.from_plain(spec, root=_study_root(spec, root))
        candidate = Candidate(study_dir, here / "logs", seed, commit, exp_id)
        pid, conn = _sample_process(executor, kind, candidate)
        streamer = Streamer(push, lambda: _signal(pid, signal.SIGINT))
        streamer.add(("node", node))
        streamer.start()
        try:
            m = _follow(conn, streamer)
        finally:
            conn.close()
            rest = streamer.finish()
            _signal(pid, signal.SIGKILL)  # gone already, unless this task is being torn down
            os.waitpid(pid, 0)
        logs = {p.name: p.read_bytes() for p in sorted((here / "logs").glob("*.log"))}
        return {
            "measurement": streamer.verdict(m),
            "logs": logs,
            "events": rest,
            "sent": streamer.sent,
            "host": socket.gethostname(),
        }
    finally:
        _discard(here)


def _follow(conn: Connection, streamer: Streamer) -> Measurement | None:
    """Relay the sample process's events until it reports its measurement."""
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return Measurement(
                "crash", reason="the sample's process on the node died before it reported"
            )
        if kind == "event":
            streamer.add(payload)
        elif kind == "error":
            raise payload
        else:
            return payload


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(OSError):  # it has exited (and is not reaped yet: no pid reuse)
        os.kill(pid, signum)


def _study_root(spec: Mapping[str, Any], cached: Path) -> Path:
    """The directory ``bwrap`` conceals with its repository: the driver's study directory
    where this node sees it too (the driver's machine, a shared filesystem), else the
    node's cache of file sets (other candidates' code).

    On the driver's own machine the candidate must not read the user's repository,
    its ledger or the other worktrees, exactly as in a local run.
    """
    driver = Path(spec["study"]["root"])
    return driver if driver.is_dir() else cached.parent


# --- the sample process (a fork of the Ray worker; never returns into Ray's code) ----------


class _Forward(Observer):
    """The sample process's observer: every event to the worker, which streams it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def phase_started(self, exp_id: int, phase: str, budget: float) -> None:
        self.conn.send(("event", ("phase", phase, budget)))

    def output_line(self, exp_id: int, line: str) -> None:
        self.conn.send(("event", ("line", line)))

    def watch(self, point: ProgressPoint) -> None:
        """The run phase's pruner here: forwards the point; a stop arrives as SIGINT."""
        self.conn.send(("event", ("point", point)))


def _sample_process(
    executor: Executor, kind: str, candidate: Candidate
) -> tuple[int, Connection]:
    """Fork the sample process; the worker's end of its connection, and its pid.

    Forked, not started afresh (a new interpreter importing Ratchet would
    cost a hundred milliseconds and more per sample). The child touches
    nothing of Ray's: it runs the executor, sends on its socket, and leaves
    with ``os._exit``.
    """
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ours.close()
            code = _in_sample_process(executor, kind, candidate, Connection(theirs.detach()))
        finally:
            os._exit(code)
    theirs.close()
    return pid, Connection(ours.detach())


def _in_sample_process(
    executor: Executor, kind: str, candidate: Candidate, conn: Connection
) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a stop: the runner's Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # Ray blocks some
    die_with_parent()  # the worker's death is ours
    forward = _Forward(conn)
    executor.observer = forward
    try:
        try:
            m = call(executor, kind, candidate, forward.watch)
        except KeyboardInterrupt:  # the stop came between two phases: nothing runs now
            m = Measurement("interrupted", reason="stopped by the driver")
        conn.send(("done", m))
    except Exception as exc:  # noqa: BLE001 - raised again in the worker, then the driver
        conn.send(("error", exc))
    return 0
