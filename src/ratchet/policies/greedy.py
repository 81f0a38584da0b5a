"""The greedy policy: always build on the incumbent (the original autoresearch rule)."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Experiment

__all__ = ["pick_parent", "incumbent"]


def incumbent(experiments: Sequence[Experiment]) -> Experiment | None:
    """The latest baseline or kept experiment: the head of the ratchet branch."""
    for exp in reversed(experiments):
        if exp.status in ("baseline", "keep"):
            return exp
    return None


def pick_parent(experiments: Sequence[Experiment]) -> Experiment | None:
    """Greedy hill-climbing: the next change starts from the incumbent."""
    return incumbent(experiments)
