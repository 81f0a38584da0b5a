"""Choosing the parent of the next experiment: greedy, tree or islands (all pure)."""

from __future__ import annotations

from ..errors import ConfigError
from ..models import Goal
from .base import Choice, Policy
from .greedy import GreedyPolicy, pick_parent
from .islands import IslandsPolicy
from .tree import TreePolicy

__all__ = ["Choice", "Policy", "GreedyPolicy", "TreePolicy", "IslandsPolicy", "pick_parent"]
__all__ += ["make_policy"]


def make_policy(name: str, goal: Goal, **settings: float) -> Policy:
    """The policy called ``name`` (``[search] policy``), with its ``[search]`` settings."""
    if name == "greedy":
        return GreedyPolicy()
    if name == "tree":
        return TreePolicy(goal=goal, **settings)  # type: ignore[arg-type]
    if name == "islands":
        return IslandsPolicy(goal=goal, **settings)  # type: ignore[arg-type]
    raise ConfigError(f"unknown search policy {name!r} — use greedy, tree or islands")
