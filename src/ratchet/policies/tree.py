"""The tree policy: best-first search over every measured node, AIDE-style.

Every experiment that ran to a judged metric is a node of a search tree (its
parent is the experiment it was built on), kept or not: a discarded change
can still be the start of a better one, which is how the search crosses a
ridge that greedy hill-climbing never leaves. Each call does one of three
things:

- **debug** (probability ``debug_probability`` while a crashed node is
  debuggable): build on the latest crashed node, so the proposer sees its
  log. A crashed node gets at most ``debug_attempts`` children, and a chain
  of crashes is followed at most ``debug_attempts`` deep.
- **draft** (probability ``draft_probability``): start afresh from the
  baseline, so one early direction does not own the whole search.
- **improve** otherwise: the measured node with the highest upper confidence
  bound ``quality + exploration * sqrt(ln(1 + N) / (1 + n))``, where
  ``quality`` is the node's rank among measured nodes (1 for the best, 0 for
  the worst; ranks, not raw values, so one diverged run does not flatten the
  rest), ``n`` its number of children and ``N`` the number of experiments.

The candidate must beat the best node so far to be kept (``Choice.incumbent``);
a node that does not is recorded as a discard and stays in the tree.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..models import Experiment, Goal
from .base import FAILED, MEASURED, Choice, baseline_of, best_of, parent_id

__all__ = ["TreePolicy", "quality"]


@dataclass(frozen=True)
class TreePolicy:
    """Best-first tree search with an exploration bonus, debug steps and fresh drafts."""

    goal: Goal = "minimize"
    exploration: float = 0.5
    debug_attempts: int = 2
    debug_probability: float = 0.5
    draft_probability: float = 0.1
    name = "tree"

    def choose(
        self, history: Sequence[Experiment], rng: random.Random, busy: Collection[Choice] = ()
    ) -> Choice | None:
        """Debug a crash, draft from the baseline, or expand the most promising node."""
        root = baseline_of(history)
        if root is None:
            return None
        nodes = [e for e in history if e.status in MEASURED and e.metric is not None and e.commit]
        best = best_of(nodes, self.goal) or root
        parents = {e.id: parent_id(e, history) for e in history}
        children = Counter(p for p in parents.values() if p is not None)
        taken = {c.parent.id for c in busy}
        debuggable = _debuggable(history, parents, children, self.debug_attempts, taken)
        if debuggable and rng.random() < self.debug_probability:
            return Choice(debuggable[-1], best, "debug", reason=f"debug #{debuggable[-1].id}")
        if rng.random() < self.draft_probability:
            return Choice(root, best, "draft", reason="a fresh draft from the baseline")
        node = self._expand(nodes, children, len(history), taken)
        return Choice(node, best, "improve", reason=f"best upper bound: #{node.id}")

    def _expand(
        self, nodes: list[Experiment], children: Counter[int], total: int, taken: set[int]
    ) -> Experiment:
        """The node with the highest upper confidence bound (not taken by a worker, if any)."""
        free = [n for n in nodes if n.id not in taken] or nodes
        ranks = quality(nodes, self.goal)

        def bound(node: Experiment) -> float:
            bonus = math.sqrt(math.log(1 + total) / (1 + children[node.id]))
            return ranks[node.id] + self.exploration * bonus

        return max(free, key=lambda n: (bound(n), -n.id))


def quality(nodes: Sequence[Experiment], goal: Goal) -> dict[int, float]:
    """Each node's rank in [0, 1]: 1 for the best metric, 0 for the worst (ties share)."""
    values = sorted({n.metric for n in nodes if n.metric is not None}, reverse=goal == "minimize")
    if len(values) < 2:
        return {n.id: 1.0 for n in nodes}
    position = {v: i / (len(values) - 1) for i, v in enumerate(values)}
    return {n.id: position[n.metric] for n in nodes if n.metric is not None}


def _debuggable(
    history: Sequence[Experiment],
    parents: dict[int, int | None],
    children: Counter[int],
    attempts: int,
    taken: set[int],
) -> list[Experiment]:
    """Crashed nodes with debug attempts left, oldest first."""
    by_id = {e.id: e for e in history}

    def depth(exp: Experiment) -> int:
        """How many failed experiments in a row end at ``exp``."""
        count, node = 0, exp
        while node is not None and node.status in FAILED:
            count += 1
            up = parents.get(node.id)
            node = by_id.get(up) if up is not None else None
        return count

    return [
        e
        for e in history
        if e.status in FAILED
        and e.commit
        and e.id not in taken
        and children[e.id] < attempts
        and depth(e) <= attempts
    ]
