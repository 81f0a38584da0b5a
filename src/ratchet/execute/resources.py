"""Worker slots: what each of N workers may use (minimal version; see the contract).

A ``Slot`` names one worker (``w0``, ``w1``, ...) and the CPUs, GPUs and
memory it is given. This version restricts nothing: ``plan_slots`` gives one
unrestricted slot per worker, and ``"auto"`` means one worker per CPU core.
The ``[resources]`` section (CPUs, GPUs and memory per experiment) refines it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..study import Study

__all__ = ["Slot", "plan_slots"]


@dataclass(frozen=True)
class Slot:
    """One worker's share of the machine; empty tuples restrict nothing."""

    index: int
    cpus: tuple[int, ...] = ()
    gpus: tuple[str, ...] = ()
    memory_mb: float | None = None

    @property
    def name(self) -> str:
        return f"w{self.index}"

    def environ(self) -> dict[str, str]:
        """Variables that keep a phase on this slot's share (none when it restricts nothing)."""
        env: dict[str, str] = {}
        if self.cpus:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(len(self.cpus))
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env


def plan_slots(study: Study, workers: int | None) -> list[Slot]:
    """``workers`` slots, or as many as the machine allows when None ("auto")."""
    count = workers if workers is not None else max(1, len(os.sched_getaffinity(0)))
    return [Slot(index=k) for k in range(count)]
