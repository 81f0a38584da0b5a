"""The one place that decides which executor runs a worker's experiments.

The loop asks for one executor per worker slot and treats them alike
(``base.BaseExecutor``): here, local processes pinned to the slot
(``phases.Executor``). A remote backend (``[execute] backend``) is chosen
here too, its module imported only when asked for, so that a missing
optional dependency costs nothing to those who do not use it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..observer import Observer
from ..study import Study
from .base import BaseExecutor
from .phases import Executor
from .resources import Slot

__all__ = ["make_executor"]


def make_executor(
    study: Study,
    *,
    pinned: Mapping[str, bytes],
    observer: Observer | None = None,
    budget: float | None = None,
    slot: Slot | None = None,
) -> BaseExecutor:
    """An executor for one worker: ``slot`` is its share of the machine (None: all of it)."""
    if study.execute.backend == "ray":
        from .ray_backend import RayExecutor

        return RayExecutor(study, pinned=pinned, observer=observer, budget=budget, slot=slot)
    return Executor(study, pinned=pinned, observer=observer, budget=budget, slot=slot)
