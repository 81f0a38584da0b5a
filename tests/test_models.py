"""The rules defined once in ``ratchet.models``: "better under the goal" and "the best so far"."""

from __future__ import annotations

import pytest

from ratchet.models import FINAL_STATUSES, KEPT, RAN, Experiment, better, gain, incumbent
from ratchet.report import summarize


def exp(id: int, status: str, metric: float | None) -> Experiment:
    return Experiment(id=id, tag="t", parent=None, commit=f"c{id}", status=status, metric=metric)


@pytest.mark.parametrize(
    ("value", "reference", "goal", "expected"),
    [(1.0, 2.0, "minimize", True), (2.0, 1.0, "minimize", False), (2.0, 1.0, "maximize", True),
     (1.0, 1.0, "minimize", False), (1.0, 1.0, "maximize", False)],
)
def test_better_is_strict_and_follows_the_goal(value, reference, goal, expected) -> None:
    assert better(value, reference, goal) is expected
    assert (gain(value, reference, goal) > 0) is expected


def test_the_best_is_the_latest_keep_even_when_an_earlier_mean_was_lower() -> None:
    # a noise-aware keep is judged on samples, so its mean may be above an earlier keep's
    history = [exp(1, "baseline", 10.0), exp(2, "keep", 8.0), exp(3, "discard", 1.0),
               exp(4, "keep", 8.5), exp(5, "crash", None)]
    assert incumbent(history).id == 4
    assert summarize(history, "minimize").best.id == 4  # the report agrees with the branch


def test_groups_use_known_statuses() -> None:
    assert set(KEPT) | set(RAN) <= set(FINAL_STATUSES)
    assert incumbent([]) is None
