"""The executor seam: what the loop needs from whatever runs a candidate's phases.

``phases.Executor`` runs them here, as local processes; a test passes a plain
object with these three methods, so the loop's logic is tested in milliseconds
while the real executor keeps its own real-process tests. A remote executor
reads the candidate by its commit (``Candidate.commit``), not by its path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..metrics import ProgressPoint
from .phases import Candidate, Measurement

__all__ = ["BaseExecutor", "Watch", "call"]

Watch = Callable[[ProgressPoint], "str | None"]  # a pruner: a reason to stop, or None


class BaseExecutor(Protocol):
    """Runs one sample of a candidate; ``budget`` is the run phase's, in seconds."""

    budget: float

    def smoke(self, candidate: Candidate) -> Measurement | None:
        """The study's cheap pre-check, or None when it has none."""
        ...

    def measure(self, candidate: Candidate, watch: Watch | None = None) -> Measurement:
        """Run phase, then evaluate phase: one sample."""
        ...

    def confirm(self, candidate: Candidate) -> Measurement:
        """The study's ``[confirm]`` command on a measured candidate."""
        ...


def call(
    executor: BaseExecutor, kind: str, candidate: Candidate, watch: Watch | None = None
) -> Measurement | None:
    """One sample by the name of its kind (smoke, measure, confirm): how an executor in
    another process (a worker process, a Ray node) is asked over a socket."""
    if kind == "smoke":
        return executor.smoke(candidate)
    if kind == "confirm":
        return executor.confirm(candidate)
    return executor.measure(candidate, watch=watch)
