"""The greedy policy: always build on the incumbent (the original autoresearch rule)."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..models import Experiment, incumbent
from .base import Choice

__all__ = ["GreedyPolicy", "pick_parent", "incumbent"]


def pick_parent(experiments: Sequence[Experiment]) -> Experiment | None:
    """Greedy hill-climbing: the next change starts from the incumbent."""
    return incumbent(experiments)


@dataclass(frozen=True)
class GreedyPolicy:
    """``pick_parent`` behind the ``Policy`` seam: parent and incumbent are the same."""

    name = "greedy"

    def choose(
        self, history: Sequence[Experiment], rng: random.Random, busy: Collection[Choice] = ()
    ) -> Choice | None:
        """The incumbent, whatever the other workers run (they all climb from it)."""
        parent = incumbent(history)
        return None if parent is None else Choice(parent, parent, reason="the incumbent")
