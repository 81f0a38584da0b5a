"""Choosing the parent of the next experiment: a ``Policy`` (pure, over the history)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..models import Experiment
from .greedy import Greedy, pick_parent

__all__ = ["Policy", "Greedy", "pick_parent"]


class Policy(Protocol):
    """Picks the experiment the next change builds on, from this tag's history."""

    def pick_parent(self, experiments: Sequence[Experiment]) -> Experiment | None: ...
