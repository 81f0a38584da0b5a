"""The islands policy: K lineages climbing side by side, with migration and restarts.

Each island is a greedy climber with its own incumbent (in git: its own
branch ``ratchet-island/<tag>/<k>``, which only moves forward). Islands keep
the search from putting every experiment into the first basin it finds.

- **Which island next**: the one with the fewest experiments so far (the
  lowest index on a tie), skipping islands other workers are running, so
  several workers take different islands.
- **Migration**: after every ``migrate_every`` experiments, the global best
  replaces the incumbent of the worst island (only that one, so the others
  keep their own direction).
- **Restart**: an island whose incumbent has not improved for ``stagnation``
  of its own experiments restarts from the global best.

The state is rebuilt by replaying the history (each experiment records its
``island``), so the policy stays pure and a resumed run continues exactly.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..models import Experiment, Goal, better
from .base import Choice, baseline_of, island_of

__all__ = ["IslandsPolicy", "Island", "replay"]


@dataclass
class Island:
    """One lineage while the history is replayed."""

    incumbent: Experiment
    runs: int = 0  # experiments of this island
    stale: int = 0  # of them since the incumbent last changed


@dataclass(frozen=True)
class IslandsPolicy:
    """K greedy lineages; the best migrates every M experiments; stagnant ones restart."""

    goal: Goal = "minimize"
    islands: int = 4
    migrate_every: int = 10
    stagnation: int = 15
    name = "islands"

    def choose(
        self, history: Sequence[Experiment], rng: random.Random, busy: Collection[Choice] = ()
    ) -> Choice | None:
        """The least-explored island that no other worker holds, from its incumbent."""
        state = replay(history, self)
        if state is None:
            return None
        taken = {c.island for c in busy}
        free = [k for k in range(self.islands) if k not in taken] or list(range(self.islands))
        k = min(free, key=lambda i: (state[i].runs, i))
        inc = state[k].incumbent
        return Choice(inc, inc, island=k, reason=f"island {k} from #{inc.id}")


def replay(history: Sequence[Experiment], policy: IslandsPolicy) -> list[Island] | None:
    """Every island's state after the history (None before a baseline)."""
    root = baseline_of(history)
    if root is None:
        return None
    state = [Island(root) for _ in range(policy.islands)]
    counted = 0
    for exp in history:
        k = island_of(exp)
        if k is None or not 0 <= k < policy.islands:
            continue
        island = state[k]
        island.runs += 1
        island.stale += 1
        if exp.status == "keep" and _beats(exp, island.incumbent, policy.goal):
            island.incumbent, island.stale = exp, 0
        counted += 1
        _restart(state, policy)
        if policy.migrate_every and counted % policy.migrate_every == 0:
            _migrate(state, policy.goal)
    return state


def _beats(exp: Experiment, other: Experiment, goal: Goal) -> bool:
    """True when ``exp`` has a metric strictly better than ``other``'s."""
    if exp.metric is None:
        return False
    return other.metric is None or better(exp.metric, other.metric, goal)


def _best(state: list[Island], goal: Goal) -> Experiment:
    """The best incumbent over all islands (the lowest island on a tie)."""
    best = state[0].incumbent
    for island in state[1:]:
        if _beats(island.incumbent, best, goal):
            best = island.incumbent
    return best


def _migrate(state: list[Island], goal: Goal) -> None:
    """The global best replaces the incumbent of the worst island."""
    best = _best(state, goal)
    worst = state[0]
    for island in state[1:]:
        if _beats(worst.incumbent, island.incumbent, goal):
            worst = island
    if _beats(best, worst.incumbent, goal):
        worst.incumbent, worst.stale = best, 0


def _restart(state: list[Island], policy: IslandsPolicy) -> None:
    """Islands stagnant for ``stagnation`` experiments start again from the global best."""
    if not policy.stagnation:
        return
    best = _best(state, policy.goal)
    for island in state:
        if island.stale >= policy.stagnation:
            island.incumbent, island.stale = best, 0
