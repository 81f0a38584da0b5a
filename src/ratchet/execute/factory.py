"""One place that builds the executor a study asks for: local processes, or a Ray cluster.

The Ray backend is imported only when a study asks for it, so Ratchet runs
without Ray installed; a study that asks for it then gets one sentence naming
the extra to install.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..observer import Observer
from ..study import Study
from .base import BaseExecutor
from .phases import Executor

__all__ = ["make_executor"]


def make_executor(
    study: Study,
    *,
    pinned: Mapping[str, bytes],
    observer: Observer | None,
    budget: float | None,
    slot: object | None = None,
) -> BaseExecutor:
    """The executor of one worker: ``[execute] backend`` decides which kind."""
    if study.execute.backend == "ray":
        from .ray_backend import RayExecutor

        return RayExecutor(study, pinned=pinned, observer=observer, budget=budget, slot=slot)
    return Executor(study, pinned=pinned, observer=observer, budget=budget)
