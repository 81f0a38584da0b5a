"""The policy seam: which measured experiment the next one builds on.

A policy is pure: the study's history in (every experiment of the tag, oldest
first), one ``Choice`` out. It reads only what every ledger row has — ``id``,
``parent`` (the parent commit), ``commit``, ``status``, ``metric`` — plus two
lineage fields that the loop records with each experiment it starts from a
``Choice``:

- ``parent_id``: the id of the experiment the proposal was built on (the
  commit alone is ambiguous once a node can be re-measured or rebased);
- ``island``: the lineage (``islands`` policy) the experiment belongs to.

They are ledger columns (migration 4), loaded into ``Experiment.parent_id`` and
``Experiment.island``; ``meta["parent_id"]`` / ``meta["island"]`` are still read
when the field is empty (plain test data). Where ``parent_id`` is missing it is
recovered from the parent commit (the latest experiment with that commit), so
histories written before the lineage columns still work.

The loop calls ``choose`` once per experiment, just before proposing. With
several workers, each passes the ``busy`` choices still in flight: ``tree``
then prefers another node and ``islands`` another island, so workers spread
out instead of all extending the same parent.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from ..models import BROKE, ROUTINE, Experiment, Goal, better

__all__ = [
    "NODES",
    "Choice",
    "Policy",
    "Kind",
    "parent_id",
    "island_of",
    "better",
    "baseline_of",
    "best_of",
]

NODES = (*ROUTINE, *BROKE)  # measured to the end, or crashed: what a change can build on
Kind = Literal["improve", "debug", "draft"]


@dataclass(frozen=True)
class Choice:
    """Where the next experiment starts.

    ``parent`` is the experiment to build on (its commit is checked out);
    ``incumbent`` is the one the candidate must beat to be kept — the parent
    for greedy, the island's incumbent for islands, the best so far for tree.
    ``kind`` tells the proposer what is asked: improve a measured node, debug
    a crashed one (its log goes in the context), or draft afresh from the
    baseline. ``island`` is the lineage for islands, else None.
    """

    parent: Experiment
    incumbent: Experiment
    kind: Kind = "improve"
    island: int | None = None
    reason: str = ""

    @property
    def slot(self) -> tuple[int | None, int]:
        """What two concurrent workers should not share: (island, parent id)."""
        return (self.island, self.parent.id)


@runtime_checkable
class Policy(Protocol):
    """Anything with a ``name`` and a pure ``choose``.

    ``choose`` returns None only when the history has no baseline yet (the
    loop measures one first). ``rng`` is the loop's seeded random stream, so
    a run is reproducible; ``busy`` holds the choices other workers are
    running now.
    """

    name: str

    def choose(
        self,
        history: Sequence[Experiment],
        rng: random.Random,
        busy: Collection[Choice] = (),
    ) -> Choice | None:
        """The parent (and island, and kind) of the next experiment."""
        ...


def parent_id(exp: Experiment, history: Sequence[Experiment]) -> int | None:
    """The id of the experiment ``exp`` was built on: recorded, else found by commit."""
    recorded = exp.parent_id
    if recorded is None and isinstance(exp.meta, dict):
        recorded = exp.meta.get("parent_id")
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        return recorded
    if exp.parent is None:
        return None
    for other in reversed(history):
        if other.id < exp.id and other.commit == exp.parent and other.status in NODES:
            return other.id
    return None


def island_of(exp: Experiment) -> int | None:
    """The island recorded for ``exp`` (None outside the islands policy)."""
    island = exp.island
    if island is None and isinstance(exp.meta, dict):
        island = exp.meta.get("island")
    return island if isinstance(island, int) and not isinstance(island, bool) else None


def baseline_of(history: Sequence[Experiment]) -> Experiment | None:
    """The first measured baseline of the history (the root every draft starts from)."""
    return next((e for e in history if e.status == "baseline" and e.commit), None)


def best_of(nodes: Sequence[Experiment], goal: Goal) -> Experiment | None:
    """The node with the best metric; the earliest wins a tie."""
    best = None
    for node in nodes:
        if node.metric is not None and (best is None or better(node.metric, best.metric, goal)):
            best = node
    return best
