"""Search policies: pure functions from the history to the next parent."""

from __future__ import annotations

import random

import pytest

from ratchet.models import Experiment
from ratchet.policies import (
    Choice,
    GreedyPolicy,
    IslandsPolicy,
    Policy,
    TreePolicy,
    make_policy,
    pick_parent,
)
from ratchet.policies.base import parent_id
from ratchet.policies.islands import replay
from ratchet.study import SearchSpec


def exp(
    number: int,
    status: str,
    metric: float | None,
    parent: int | None = None,
    island: int | None = None,
) -> Experiment:
    """A ledger row built on experiment ``parent`` (its commit is ``c<parent>``)."""
    meta = {} if island is None else {"island": island}
    return Experiment(
        id=number, tag="t", parent=None if parent is None else f"c{parent}",
        commit=f"c{number}", status=status, metric=metric, meta=meta,
    )  # fmt: skip


RNG = random.Random(0)
HISTORY = [
    exp(1, "baseline", 10.0),
    exp(2, "keep", 8.0, 1),
    exp(3, "discard", 9.0, 2),
    exp(4, "crash", None, 2),
    exp(5, "discard", 12.0, 1),
]


def test_every_policy_is_a_policy_and_waits_for_a_baseline() -> None:
    for policy in (GreedyPolicy(), TreePolicy(), IslandsPolicy()):
        assert isinstance(policy, Policy)
        assert policy.choose([], RNG) is None
        assert policy.choose([exp(1, "running", None)], RNG) is None


def test_greedy_is_pick_parent() -> None:
    choice = GreedyPolicy().choose(HISTORY, RNG)
    assert choice is not None and choice.parent == pick_parent(HISTORY) == HISTORY[1]
    assert choice.incumbent == choice.parent and choice.island is None


def test_parent_id_is_recorded_or_recovered_from_the_commit() -> None:
    assert parent_id(HISTORY[3], HISTORY) == 2
    meta = {"parent_id": 3}
    recorded = Experiment(id=6, tag="t", parent="c2", commit="c6", status="keep", meta=meta)
    assert parent_id(recorded, HISTORY) == 3
    assert parent_id(HISTORY[0], HISTORY) is None


def test_tree_without_exploration_expands_the_best_node() -> None:
    policy = TreePolicy(exploration=0, debug_probability=0, draft_probability=0)
    choice = policy.choose(HISTORY, RNG)
    assert choice is not None and choice.parent.id == 2 and choice.kind == "improve"
    assert choice.incumbent.id == 2  # the candidate must beat the best node to be kept


def test_tree_explores_an_unvisited_worse_node_and_may_build_on_a_discard() -> None:
    history = [*HISTORY] + [exp(10 + i, "discard", 8.5, 2) for i in range(8)]
    choice = TreePolicy(exploration=2.0, debug_probability=0, draft_probability=0).choose(
        history, RNG
    )
    assert choice is not None and choice.parent.status == "discard"
    assert choice.parent.id not in (1, 2)


def test_tree_descends_into_the_less_visited_direction() -> None:
    """The baseline's up-subtree holds the best node and ten experiments; down has one."""
    history = [exp(1, "baseline", 10.0), exp(2, "discard", 11.0, 1), exp(3, "keep", 6.0, 1)]
    history += [exp(4 + i, "discard", 7.0 + i / 10, 3) for i in range(9)]
    explore = TreePolicy(exploration=1.0, debug_probability=0, draft_probability=0)
    choice = explore.choose(history, RNG)
    assert choice is not None and choice.parent.id == 2 and choice.incumbent.id == 3
    exploit = TreePolicy(exploration=0, debug_probability=0, draft_probability=0)
    choice = exploit.choose(history, RNG)
    assert choice is not None and choice.parent.id == 3


def test_tree_debugs_a_crash_at_most_debug_attempts_times() -> None:
    policy = TreePolicy(debug_attempts=2, debug_probability=1.0, draft_probability=0)
    choice = policy.choose(HISTORY, RNG)
    assert choice is not None and choice.kind == "debug" and choice.parent.id == 4
    tried = [*HISTORY, exp(6, "crash", None, 4), exp(7, "discard", 9.5, 4)]
    choice = policy.choose(tried, RNG)
    assert choice is not None and choice.kind == "debug" and choice.parent.id == 6  # a chain
    chain = [*tried, exp(8, "crash", None, 6), exp(9, "crash", None, 6)]
    choice = policy.choose(chain, RNG)  # 4 -> 6 -> 8 and 9: no attempts left anywhere
    assert choice is not None and choice.kind == "improve"


def test_tree_drafts_from_the_baseline() -> None:
    choice = TreePolicy(debug_probability=0, draft_probability=1.0).choose(HISTORY, RNG)
    assert choice is not None and choice.kind == "draft" and choice.parent.id == 1


def test_tree_drafts_sometimes_and_is_reproducible() -> None:
    policy = TreePolicy(debug_probability=0, draft_probability=0.2)
    kinds = [policy.choose(HISTORY, random.Random(s)).kind for s in range(200)]  # type: ignore[union-attr]
    assert 20 < kinds.count("draft") < 60
    assert policy.choose(HISTORY, random.Random(5)) == policy.choose(HISTORY, random.Random(5))


def test_tree_workers_spread_over_nodes() -> None:
    policy = TreePolicy(exploration=0, debug_probability=0, draft_probability=0)
    first = policy.choose(HISTORY, RNG)
    assert first is not None
    second = policy.choose(HISTORY, RNG, busy=[first])
    assert second is not None and second.parent.id != first.parent.id


def islands_history() -> list[Experiment]:
    return [exp(1, "baseline", 10.0)]


def test_islands_take_turns_from_the_baseline_and_climb_apart() -> None:
    policy = IslandsPolicy(islands=3, migrate_every=0, stagnation=0)
    history = islands_history()
    picks = []
    for number in range(2, 8):
        choice = policy.choose(history, RNG)
        assert choice is not None
        picks.append(choice.island)
        status = "keep" if choice.island == 1 and number < 6 else "discard"
        metric = 10.0 - number if status == "keep" else 11.0
        history.append(exp(number, status, metric, choice.parent.id, choice.island))
    assert picks == [0, 1, 2, 0, 1, 2]
    choice = policy.choose(history, RNG)
    assert choice is not None and choice.island == 0 and choice.parent.id == 1
    island1 = policy.choose(history, RNG, busy=[choice, Choice(history[0], history[0], island=2)])
    assert island1 is not None and island1.island == 1 and island1.parent.id == 3
    assert island1.incumbent == island1.parent


def test_islands_migrate_the_best_into_the_worst_island() -> None:
    policy = IslandsPolicy(islands=3, migrate_every=4, stagnation=0)
    history = [
        exp(1, "baseline", 10.0),
        exp(2, "keep", 5.0, 1, island=0),
        exp(3, "keep", 8.0, 1, island=1),
        exp(4, "discard", 11.0, 1, island=2),
    ]
    assert [i.incumbent.id for i in replay(history, policy)] == [2, 3, 1]  # type: ignore[union-attr]
    history.append(exp(5, "keep", 4.0, 2, island=0))  # the 4th island experiment: migration
    assert [i.incumbent.id for i in replay(history, policy)] == [5, 3, 5]  # type: ignore[union-attr]
    after = policy.choose(history, RNG)
    assert after is not None and after.island == 1 and after.parent.id == 3  # fewest runs


def test_a_stagnant_island_restarts_from_the_best() -> None:
    policy = IslandsPolicy(islands=2, migrate_every=0, stagnation=2)
    history = [
        exp(1, "baseline", 10.0),
        exp(2, "keep", 5.0, 1, island=0),
        exp(3, "discard", 11.0, 1, island=1),
        exp(4, "discard", 6.0, 2, island=0),
    ]
    assert [i.incumbent.id for i in replay(history, policy)] == [2, 1]  # type: ignore[union-attr]
    history.append(exp(5, "discard", 12.0, 1, island=1))  # island 1: two without progress
    assert [i.incumbent.id for i in replay(history, policy)] == [2, 2]  # type: ignore[union-attr]
    choice = policy.choose(history, RNG, busy=[Choice(history[1], history[1], island=0)])
    assert choice is not None and choice.island == 1 and choice.parent.id == 2


@pytest.mark.parametrize(
    ("name", "kind"), [("greedy", GreedyPolicy), ("tree", TreePolicy), ("islands", IslandsPolicy)]
)
def test_make_policy_reads_the_search_section(name: str, kind: type) -> None:
    policy = make_policy(SearchSpec(policy=name, islands=3, exploration=1.5), "maximize")
    assert isinstance(policy, kind) and policy.name == name
    if name != "greedy":
        assert policy.goal == "maximize"  # type: ignore[attr-defined]
