"""Each local worker's phases in a process of its own (``ratchet run --workers N``, N > 1).

Why a process: the runner forks a shepherd for every phase and, while the
phase runs, makes its own process a child subreaper, then kills and reaps
the orphans a killed shepherd left (``orphans.kill_adopted``: every child
started after that shepherd). Both are properties of a whole process, and
``os.fork`` in a process with several threads may deadlock the child. So the
threads of ``ratchet run --workers N`` never fork: each local worker is a
single-threaded Python process (``python -m ratchet.execute.isolated FD DIR``)
that owns its executor and runs one phase at a time, exactly as a lone
``ratchet run`` does. The processes are started by ``subprocess`` (fork and
exec in one C call, safe from a threaded process) before any worker thread
exists. The driver's thread for that worker talks with it over a socket pair:
the call (method, candidate, pruner; pickled), then the observer's events as
they happen (phase started, output lines), then the ``Measurement``.

Lifetime and signals: a worker process asks the kernel to kill it when the
driver dies (``PR_SET_PDEATHSIG``), kill -9 included; its shepherd then sees
its control pipe close and kills the experiment's tree. It leaves when its
socket closes. Ctrl-C in a terminal reaches it (same process group) and
interrupts its phase as with one worker; ``IsolatedExecutor.interrupt`` sends it
SIGINT for a SIGINT sent to the driver alone. A worker process that dies mid-sample gives
a ``crash`` naming it, and is started again for the next call.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from multiprocessing.connection import Connection

from ..observer import Observer
from ..study import Study
from .base import BaseExecutor, Watch, call
from .environment import adopt_environ, user_environ
from .factory import make_executor
from .orphans import die_with_parent
from .phases import Candidate, Measurement
from .resources import Slot

__all__ = ["Pool", "IsolatedExecutor", "main"]

_EVENTS = ("phase_started", "output_line")  # what a worker process reports while it runs
CLOSE_WAIT_S = 10.0


class IsolatedExecutor:
    """The driver's side of one worker process: ``BaseExecutor``'s methods, forwarded."""

    def __init__(
        self,
        study: Study,
        pinned: Mapping[str, bytes],
        observer: Observer,
        budget: float | None,
        slot: Slot,
    ) -> None:
        self.budget = budget or study.run.budget
        self._init = (study, dict(pinned), budget, slot, user_environ())
        self._where = str(study.root)
        self.observer = observer
        self.slot = slot
        self.process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._start()

    def smoke(self, candidate: Candidate) -> Measurement | None:
        return self._call("smoke", candidate)

    def measure(self, candidate: Candidate, watch: Watch | None = None) -> Measurement:
        result = self._call("measure", candidate, watch)
        assert result is not None
        return result

    def confirm(self, candidate: Candidate) -> Measurement:
        result = self._call("confirm", candidate)
        assert result is not None
        return result

    def interrupt(self) -> None:
        """Ctrl-C for this worker's phase in flight (harmless when it is idle)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.send_signal(signal.SIGINT)

    def close(self) -> None:
        """Close the socket (the process leaves) and reap it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.process is not None:
            try:
                self.process.wait(CLOSE_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def _start(self) -> None:
        mine, theirs = socket.socketpair()
        with theirs:
            fd = theirs.fileno()
            self.process = subprocess.Popen(
                # the study's directory names it in `ps` (and for tests that look for leftovers)
                [sys.executable, "-m", "ratchet.execute.isolated", str(fd), self._where],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
            )
        self._conn = Connection(mine.detach())
        self._conn.send(self._init)

    def _call(
        self, method: str, candidate: Candidate, watch: Watch | None = None
    ) -> Measurement | None:
        if self.process is None or self.process.poll() is not None:
            self.close()
            self._start()
        assert self._conn is not None
        try:
            self._conn.send((method, candidate, watch))
            while True:
                kind, payload = self._conn.recv()
                if kind == "done":
                    return payload
                if kind == "error":
                    raise payload
                name, args = payload
                if name in _EVENTS:
                    getattr(self.observer, name)(*args)
        except (EOFError, OSError) as exc:
            code = self.process.poll() if self.process is not None else None
            self.close()
            how = f"exit code {code}" if code is not None else str(exc) or type(exc).__name__
            return Measurement(
                "crash", reason=f"the worker process of {self.slot.name} died ({how})"
            )


class Pool:
    """One worker process per slot, started now (before any worker thread exists)."""

    def __init__(
        self,
        study: Study,
        pinned: Mapping[str, bytes],
        observer: Observer,
        budget: float | None,
        slots: list[Slot],
    ) -> None:
        self.executors: list[IsolatedExecutor] = []
        try:
            for slot in slots:
                self.executors.append(IsolatedExecutor(study, pinned, observer, budget, slot))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for executor in self.executors:
            executor.close()


# --- the worker process's side -----------------------------------------------------


class _Forward(Observer):
    """Sends the executor's events to the driver, which shows them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def phase_started(self, exp_id: int, phase: str, budget: float) -> None:
        self.conn.send(("event", ("phase_started", (exp_id, phase, budget))))

    def output_line(self, exp_id: int, line: str) -> None:
        self.conn.send(("event", ("output_line", (exp_id, line))))


def _serve(conn: Connection, executor: BaseExecutor) -> None:
    """Answer calls until the driver closes the socket; Ctrl-C while idle is ignored."""
    while True:
        try:
            method, candidate, watch = conn.recv()
        except EOFError:
            return
        except KeyboardInterrupt:
            continue
        try:
            conn.send(("done", call(executor, method, candidate, watch)))
        except KeyboardInterrupt:  # between phases: the sample is interrupted
            conn.send(("done", Measurement("interrupted", reason="stopped by Ctrl-C")))
        except Exception as exc:  # noqa: BLE001 - raised again in the driver
            conn.send(("error", exc))


def main(argv: list[str]) -> int:
    """The worker process: ``python -m ratchet.execute.isolated FD [STUDY-DIR]``."""
    die_with_parent()
    conn = Connection(int(argv[1]))
    try:
        study, pinned, budget, slot, environ = conn.recv()
    except (EOFError, KeyboardInterrupt):
        return 0
    adopt_environ(environ)
    executor = make_executor(
        study, pinned=pinned, observer=_Forward(conn), budget=budget, slot=slot
    )
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        _serve(conn, executor)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a worker process
    sys.exit(main(sys.argv))
