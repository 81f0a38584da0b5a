"""Choosing the parent of the next experiment: greedy, tree or islands (all pure)."""

from __future__ import annotations

from ..models import Goal
from ..study import SearchSpec
from .base import Choice, Policy
from .greedy import GreedyPolicy, pick_parent
from .islands import IslandsPolicy
from .tree import TreePolicy

__all__ = [
    "Choice",
    "Policy",
    "GreedyPolicy",
    "TreePolicy",
    "IslandsPolicy",
    "pick_parent",
    "make_policy",
]


def make_policy(search: SearchSpec, goal: Goal) -> Policy:
    """The policy ``[search] policy`` names, with its settings from the same section."""
    if search.policy == "tree":
        return TreePolicy(
            goal=goal,
            exploration=search.exploration,
            debug_attempts=search.debug_attempts,
            debug_probability=search.debug_probability,
            draft_probability=search.draft_probability,
        )
    if search.policy == "islands":
        return IslandsPolicy(
            goal=goal,
            islands=search.islands,
            migrate_every=search.migrate_every,
            stagnation=search.stagnation,
        )
    return GreedyPolicy()
