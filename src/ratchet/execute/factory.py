"""The executor for one worker slot, from the study's ``[execute]`` (minimal version).

The local backend is ``phases.Executor`` with the slot's environment; a
backend that runs elsewhere (Ray) is added here, imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..observer import Observer
from ..study import Study
from .base import BaseExecutor
from .environment import user_environ
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
    """One worker's executor; ``slot`` None (one worker) restricts nothing."""
    environ = {**user_environ(), **(slot.environ() if slot else {})}
    return Executor(study, pinned=pinned, observer=observer, budget=budget, environ=environ)
