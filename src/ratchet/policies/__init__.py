"""Choosing the parent of the next experiment."""

from .greedy import pick_parent

__all__ = ["pick_parent"]
