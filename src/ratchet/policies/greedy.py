"""The greedy policy: always build on the incumbent (the original autoresearch rule)."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Experiment, incumbent

__all__ = ["pick_parent", "incumbent"]


def pick_parent(experiments: Sequence[Experiment]) -> Experiment | None:
    """Greedy hill-climbing: the next change starts from the incumbent."""
    return incumbent(experiments)
