"""N experiments in flight: the workers of one ``ratchet run --workers N``.

Each worker has its own ``Bench`` (worktree ``.ratchet/worktrees/<tag>/w<k>``,
executor, name ``w<k>``); the loop (the driver) chooses, proposes and hands a
job to a free worker, which runs it on a thread of its own. A lone worker runs
its job inline on the driver's thread, so ``--workers 1`` is exactly the
sequential loop.

One owner of the ledger and of git: every thread holds the benches' shared
lock (``Bench.cond``) except while a phase runs (``Bench.unlocked``), while
the driver's proposer thinks, or while the driver waits here for a worker. So
rows, refs and the history change one trial at a time, and an LLM call
overlaps the other workers' runs.

A worker's job ends in one of three ways: it finished its trial (recorded);
Ctrl-C interrupted it (``KeyboardInterrupt`` from its sample: nothing more is
recorded, the driver marks every row still ``running`` as interrupted once all
workers have stopped); or it failed (a ``RatchetError`` such as a full disk):
the error is raised on the driver's thread at its next wait, after the other
workers are interrupted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..decide.judge import Judge
from ..execute.base import BaseExecutor
from ..execute.factory import make_executor
from ..execute.isolated import Pool
from ..execute.resources import Slot
from ..observer import Observer
from ..policies.base import Choice
from ..proposers.base import Proposer
from .trial import Bench
from .workspace import Workspace

__all__ = ["Crew", "Worker"]

JOIN_POLL_S = 0.1  # how often a driver waiting for interrupted workers looks again
Job = Callable[[Bench], object]


@dataclass
class Worker:
    """One worker slot: its bench, and what it is busy with (None: idle)."""

    bench: Bench
    busy: bool = False
    choice: Choice | None = None

    @property
    def name(self) -> str:
        return self.bench.worker


class Crew:
    """The workers of one run and the driver's view of them (see the module's notes)."""

    def __init__(self, benches: list[Bench], interrupt: Callable[[], None] | None = None) -> None:
        self.workers = [Worker(bench) for bench in benches]
        self.cond = benches[0].cond
        self.error: BaseException | None = None
        self._interrupt = interrupt or (lambda: None)

    @classmethod
    def assemble(
        cls,
        ws: Workspace,
        slots: list[Slot],
        judge: Judge,
        observer: Observer,
        proposer: Proposer,
        executor: BaseExecutor | None,
        pool: Pool | None,
    ) -> Crew:
        """One bench per worker slot: its worktree and executor; the rest shared."""

        def executor_of(k: int) -> BaseExecutor:
            if executor is not None:
                return executor
            if pool is not None:
                return pool.executors[k]
            return make_executor(
                ws.study, pinned=ws.pinned, observer=observer, budget=ws.budget, slot=slots[k]
            )

        first = Bench(
            ws, executor_of(0), judge, observer, proposer=proposer.name, worker=slots[0].name
        )
        benches = [first] + [
            first.for_worker(ws.for_worker(k, len(slots)), executor_of(k), slots[k].name)
            for k in range(1, len(slots))
        ]
        def interrupt() -> None:  # worker processes and Ray samples stop theirs
            for bench in benches:
                if stop := getattr(bench.executor, "interrupt", None):
                    stop()

        return cls(benches, interrupt=interrupt)

    @property
    def inline(self) -> bool:
        return len(self.workers) == 1

    def busy(self) -> list[Choice]:
        """The choices in flight, for ``policy.choose(..., busy=...)``."""
        return [w.choice for w in self.workers if w.busy and w.choice is not None]

    def in_flight(self) -> int:
        return sum(w.busy for w in self.workers)

    def idle(self) -> Worker:
        """A free worker, waiting (lock released) until one is; a worker's failure is raised."""
        while True:
            self._raise()
            free = next((w for w in self.workers if not w.busy), None)
            if free is not None:
                return free
            self.cond.wait()

    def start(self, worker: Worker, job: Job, choice: Choice | None = None) -> None:
        """Run ``job`` on ``worker``: inline for a lone worker, else on a thread of its own."""
        if self.inline:
            try:
                job(worker.bench)
            finally:
                worker.bench.observer.assigned(worker.name, None)
            return
        worker.busy, worker.choice = True, choice
        thread = threading.Thread(target=self._run, args=(worker, job), name=worker.name)
        thread.daemon = True  # a driver that died must not wait for it (its phase is stopped)
        thread.start()

    def drain(self) -> None:
        """Wait until every worker is idle (their trials finished); a failure is raised."""
        while self.in_flight():
            self._raise()
            self.cond.wait()
        self._raise()

    def stop(self) -> None:
        """Ctrl-C or an error: interrupt every phase in flight and wait for the workers."""
        if self.inline or not self.in_flight():
            return
        self._interrupt()
        while self.in_flight():
            self.cond.wait(JOIN_POLL_S)

    def _run(self, worker: Worker, job: Job) -> None:
        with self.cond:
            try:
                job(worker.bench)
            except KeyboardInterrupt:  # its phase was interrupted: the run stops as on Ctrl-C
                self.error = self.error or KeyboardInterrupt()
            except BaseException as exc:  # raised on the driver's thread
                self.error = self.error or exc
            finally:
                worker.busy, worker.choice = False, None
                worker.bench.observer.assigned(worker.name, None)
                self.cond.notify_all()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
