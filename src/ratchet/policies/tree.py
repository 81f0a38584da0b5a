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
- **improve** otherwise: walk down from the baseline by upper confidence
  bound, as Monte Carlo tree search does. At each node, either expand it
  (score: its quality plus ``exploration * sqrt(ln(1 + V) / (1 + n))``) or
  step into a measured child (score: the best quality in the child's
  subtree plus ``exploration * sqrt(ln(1 + V) / v)``), where ``V`` and ``v``
  count the experiments in the node's and the child's subtrees and ``n``
  the node's direct children. Quality is a node's rank among measured nodes
  (1 for the best, 0 for the worst; ranks, not raw values, so one diverged
  run does not flatten the rest). Counting visits per subtree makes a whole
  direction that has had many experiments yield to one that has had few.

The candidate must beat the best node so far to be kept (``Choice.incumbent``);
a node that does not is recorded as a discard and stays in the tree.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..models import BROKE, ROUTINE, Experiment, Goal
from .base import Choice, baseline_of, best_of, parent_id

__all__ = ["TreePolicy", "quality"]


@dataclass(frozen=True)
class TreePolicy:
    """Best-first tree search with an exploration bonus, debug steps and fresh drafts."""

    goal: Goal = "minimize"
    exploration: float = 1.0
    debug_attempts: int = 2
    debug_probability: float = 0.5
    draft_probability: float = 0.2
    name = "tree"

    def choose(
        self, history: Sequence[Experiment], rng: random.Random, busy: Collection[Choice] = ()
    ) -> Choice | None:
        """Debug a crash, draft from the baseline, or expand the most promising node."""
        root = baseline_of(history)
        if root is None:
            return None
        nodes = [e for e in history if e.status in ROUTINE and e.metric is not None and e.commit]
        best = best_of(nodes, self.goal) or root
        parents = {e.id: parent_id(e, history) for e in history}
        children = Counter(p for p in parents.values() if p is not None)
        taken = {c.parent.id for c in busy}
        debuggable = _debuggable(history, parents, children, self.debug_attempts, taken)
        if debuggable and rng.random() < self.debug_probability:
            return Choice(debuggable[-1], best, "debug", reason=f"debug #{debuggable[-1].id}")
        if rng.random() < self.draft_probability:
            return Choice(root, best, "draft", reason="a fresh draft from the baseline")
        node = self._expand(root, nodes, parents, taken)
        return Choice(node, best, "improve", reason=f"best upper bound: #{node.id}")

    def _expand(
        self,
        root: Experiment,
        nodes: list[Experiment],
        parents: dict[int, int | None],
        taken: set[int],
    ) -> Experiment:
        """Walk down from the root by upper confidence bound; stop where expanding wins.

        At each node the options are to expand the node itself (its own rank,
        with a bonus that shrinks with its direct children) or to descend into
        a measured child (the best rank in the child's subtree, with a bonus
        that shrinks with the subtree's size). Counting visits per subtree, as
        Monte Carlo tree search does, makes a whole direction that has been
        tried a lot yield to one that has not, so a ridge of worse nodes
        still gets explored.
        """
        ranks = quality(nodes, self.goal)
        tree = _Shape(nodes, parents, ranks)
        node = root
        while True:
            log_visits = math.log(tree.visits[node.id] + 1)
            here = ranks.get(node.id, 0.0) + self.exploration * math.sqrt(
                log_visits / (1 + tree.direct[node.id])
            )
            options = [(here if node.id not in taken else -math.inf, -node.id, node, True)]
            for kid in tree.kids.get(node.id, []):
                bonus = math.sqrt(log_visits / tree.visits[kid.id])
                options.append((tree.best[kid.id] + self.exploration * bonus, -kid.id, kid, False))
            _, _, chosen, stop = max(options, key=lambda o: (o[0], o[1]))
            if stop or chosen is node:
                return node
            node = chosen


class _Shape:
    """The tree's structure for one decision: measured children, visits, best rank below."""

    def __init__(
        self, nodes: list[Experiment], parents: dict[int, int | None], ranks: dict[int, float]
    ) -> None:
        measured = {n.id: n for n in nodes}
        self.kids: dict[int, list[Experiment]] = {}
        self.visits: Counter[int] = Counter()  # experiments in the subtree, the node included
        self.direct: Counter[int] = Counter()  # experiments built directly on the node
        self.best = dict(ranks)  # the best rank in the subtree
        for child, parent in sorted(parents.items()):
            if parent is not None:
                self.direct[parent] += 1
                if child in measured:
                    self.kids.setdefault(parent, []).append(measured[child])
            self.visits[child] += 1
            seen, up = {child}, parent
            while up is not None and up not in seen:  # every ancestor counts the visit
                seen.add(up)
                self.visits[up] += 1
                if child in ranks:
                    self.best[up] = max(self.best.get(up, 0.0), ranks[child])
                up = parents.get(up)


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
        while node is not None and node.status in BROKE:
            count += 1
            up = parents.get(node.id)
            node = by_id.get(up) if up is not None else None
        return count

    return [
        e
        for e in history
        if e.status in BROKE
        and e.commit
        and e.id not in taken
        and children[e.id] < attempts
        and depth(e) <= attempts
    ]
