"""Early stopping: which value, when a run is behind, and when it is only noise."""

from __future__ import annotations

import math
import random

import pytest

from ratchet.decide.prune import Pruner, curve_goal, curve_key, jitter, should_prune, value_at
from ratchet.metrics import MetricParser, ProgressPoint


def curve(values: dict[float, float], key: str = "val_loss") -> list[ProgressPoint]:
    return [ProgressPoint(progress=p, values={"step": p * 100, key: v}) for p, v in values.items()]


def falling(offset: float = 0.0, key: str = "val_loss") -> list[ProgressPoint]:
    """A loss curve at every 10 %: 3.0, 2.8, ... 1.2 (plus ``offset``)."""
    return curve({i / 10: 3.0 - 0.2 * i + offset for i in range(1, 11)}, key)


INCUMBENT = falling()


def prune(candidate: list[ProgressPoint], **options: object) -> str | None:
    settings: dict = {"key": "val_loss", "goal": "minimize", "noise": 0.0, "min_progress": 0.25}
    settings.update(options)
    return should_prune(candidate, INCUMBENT, **settings)


# --- which value -------------------------------------------------------------------------


def test_key_is_the_metric_when_progress_lines_carry_it() -> None:
    points = curve({0.5: 1.0}, key="val_loss") + curve({0.6: 0.9}, key="train_loss")
    assert curve_key(points, "val_loss", None) == "val_loss"


def test_key_falls_back_to_a_loss_and_prefers_a_held_out_one() -> None:
    train = curve({0.5: 1.0}, key="train_loss")
    both = train + curve({0.5: 1.1}, key="eval/loss")
    assert curve_key(train, "val_bpb", None) == "train_loss"
    assert curve_key(both, "val_bpb", None) == "eval/loss"


def test_counters_are_never_a_key() -> None:
    points = [ProgressPoint(0.5, {"step": 500.0, "lr": 0.001, "tokens": 1e6})]
    assert curve_key(points, "val_bpb", None) is None
    assert curve_key([], "val_bpb", None) is None


def test_configured_key_wins_and_must_exist() -> None:
    points = curve({0.5: 0.8}, key="acc") + falling()
    assert curve_key(points, "val_loss", "acc") == "acc"
    assert curve_key(points, "val_loss", "missing") is None


def test_a_loss_is_minimized_even_in_a_study_that_maximizes() -> None:
    assert curve_goal("train_loss", "accuracy", "maximize") == "minimize"
    assert curve_goal("accuracy", "accuracy", "maximize") == "maximize"
    assert curve_goal("val_acc", "accuracy", "maximize") == "maximize"


# --- interpolation and jitter ------------------------------------------------------------


def test_value_at_interpolates_linearly() -> None:
    assert value_at(INCUMBENT, "val_loss", 0.35) == pytest.approx(2.3)
    assert value_at(INCUMBENT, "val_loss", 0.5) == pytest.approx(2.0)


def test_value_at_outside_the_curve_is_unknown() -> None:
    assert value_at(INCUMBENT, "val_loss", 0.05) is None
    assert value_at(INCUMBENT, "val_loss", 1.01) is None
    assert value_at(INCUMBENT, "train_loss", 0.5) is None


def test_value_at_skips_nan_and_sorts_points() -> None:
    points = curve({0.6: 1.6, 0.2: 2.0, 0.4: math.nan})
    assert value_at(points, "val_loss", 0.4) == pytest.approx(1.8)


def test_jitter_of_a_smooth_curve_is_zero_and_of_a_noisy_one_near_its_sigma() -> None:
    assert jitter(INCUMBENT, "val_loss") == pytest.approx(0.0, abs=1e-12)
    rng = random.Random(3)
    noisy = curve({i / 200: 2.0 - i / 200 + rng.gauss(0, 0.05) for i in range(1, 201)})
    assert jitter(noisy, "val_loss") == pytest.approx(0.05, rel=0.25)


# --- when to prune ------------------------------------------------------------------------


def test_clearly_worse_run_is_pruned_at_the_second_bad_checkpoint() -> None:
    reason = prune(falling(offset=0.5))
    assert reason is not None
    # 10 % and 20 % come before min_progress; 30 % is the first bad one, 40 % the second
    assert "val_loss 2.7 vs the incumbent's 2.2 at 40% of the budget" in reason
    assert "2 checkpoints in a row" in reason


def test_nothing_is_pruned_before_min_progress() -> None:
    early = falling(offset=0.5)[:2]  # 10 % and 20 %
    assert prune(early) is None
    assert prune(falling(offset=0.5), min_progress=0.95) is None


def test_one_bad_checkpoint_is_not_enough() -> None:
    candidate = falling()
    candidate[3] = ProgressPoint(0.4, {"val_loss": 9.0})
    candidate[6] = ProgressPoint(0.7, {"val_loss": 9.0})
    assert prune(candidate) is None


def test_a_recovering_run_is_not_pruned() -> None:
    values = {i / 10: 3.0 - 0.2 * i for i in range(1, 11)}
    values[0.3] += 0.5  # behind once, then back on the incumbent's track
    assert prune(curve(values)) is None


def test_a_run_within_the_noise_is_not_pruned() -> None:
    slightly = falling(offset=0.05)
    assert prune(slightly) is not None  # 0.05 is more than 1 % of ~2: real in a quiet study
    assert prune(slightly, noise=0.1) is None  # but not when seeds differ by 0.1


def test_floor_spares_a_rounding_level_difference() -> None:
    assert prune(falling(offset=0.001)) is None


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_diverged_run_is_pruned_at_once(bad: float) -> None:
    candidate = [ProgressPoint(0.05, {"val_loss": bad})]
    reason = prune(candidate)
    assert reason is not None and reason.startswith("diverged: val_loss is")


def test_maximize_prunes_the_lower_curve() -> None:
    low, high = falling(offset=-0.5), falling(offset=0.5)
    assert prune(low, goal="maximize") is not None
    assert prune(high, goal="maximize") is None
    assert prune(low) is None  # and the other way round when minimizing


def test_no_incumbent_curve_means_no_pruning() -> None:
    candidate = [ProgressPoint(0.5, {"val_loss": math.nan})]
    assert (
        should_prune(candidate, [], key="val_loss", goal="minimize", noise=0.0, min_progress=0.25)
        is None
    )


def test_patience_is_configurable() -> None:
    assert prune(falling(offset=0.5)[:3], patience=1) is not None
    assert prune(falling(offset=0.5)[:4], patience=3) is None
    assert prune(falling(offset=0.5)[:5], patience=3) is not None


def test_a_pruned_curve_stays_pruned_as_it_grows() -> None:
    candidate = falling(offset=0.5)
    first = prune(candidate[:4])
    assert first is not None and prune(candidate) == first


# --- the loop's watcher -------------------------------------------------------------------


def watch(pruner: Pruner, points: list[ProgressPoint]) -> str | None:
    return next((why for p in points if (why := pruner.watch(p))), None)


def test_pruner_watches_a_run_point_by_point() -> None:
    pruner = Pruner(INCUMBENT, metric_name="val_loss", goal="minimize", noise=0.0,
                    min_progress=0.25)  # fmt: skip
    assert pruner.key == "val_loss"
    reasons = [pruner.watch(p) for p in falling(offset=0.5)]
    assert reasons[:3] == [None, None, None] and reasons[3] is not None
    assert reasons[-1] == reasons[3]  # a stopped run stays stopped


def test_pruner_reads_progress_lines_as_the_parser_yields_them() -> None:
    parser = MetricParser("val_bpb")
    lines = [f'{{"progress": {i / 10}, "step": {i}, "train_loss": {3 - 0.2 * i}}}' for i in
             range(1, 11)]  # fmt: skip
    incumbent = [point for line in lines if (point := parser.feed(line))]
    pruner = Pruner(incumbent, metric_name="val_bpb", goal="minimize", noise=0.0,
                    min_progress=0.25)  # fmt: skip
    assert pruner.key == "train_loss"
    assert watch(pruner, incumbent) is None  # the same curve
    again = Pruner(incumbent, metric_name="val_bpb", goal="minimize", noise=0.0,
                   min_progress=0.25)  # fmt: skip
    behind = [ProgressPoint(p.progress, {"train_loss": p.values["train_loss"] + 1})
              for p in incumbent]  # fmt: skip
    assert watch(again, behind) is not None


def test_pruner_minimizes_a_loss_in_a_study_that_maximizes() -> None:
    incumbent = falling(key="train_loss")
    pruner = Pruner(incumbent, metric_name="accuracy", goal="maximize", noise=0.0,
                    min_progress=0.25)  # fmt: skip
    assert watch(pruner, falling(offset=0.5, key="train_loss")) is not None
    fresh = Pruner(incumbent, metric_name="accuracy", goal="maximize", noise=0.0,
                   min_progress=0.25)  # fmt: skip
    assert watch(fresh, falling(offset=-0.5, key="train_loss")) is None


def test_pruner_uses_the_metric_noise_only_on_the_metric() -> None:
    # noise 5.0 is in the metric's units; a train_loss curve is not
    incumbent = falling(key="train_loss")
    pruner = Pruner(incumbent, metric_name="val_bpb", goal="minimize", noise=5.0,
                    min_progress=0.25)  # fmt: skip
    assert watch(pruner, falling(offset=0.5, key="train_loss")) is not None
    on_metric = Pruner(falling(key="val_bpb"), metric_name="val_bpb", goal="minimize",
                       noise=5.0, min_progress=0.25)  # fmt: skip
    assert watch(on_metric, falling(offset=0.5, key="val_bpb")) is None


def test_pruner_without_a_usable_key_never_prunes() -> None:
    steps = [ProgressPoint(i / 10, {"step": float(i)}) for i in range(1, 11)]
    pruner = Pruner(steps, metric_name="val_bpb", goal="minimize", noise=0.0, min_progress=0.0)
    assert pruner.key is None
    assert watch(pruner, [ProgressPoint(0.5, {"step": math.nan})]) is None


def test_pruner_ignores_points_without_its_key() -> None:
    pruner = Pruner(INCUMBENT, metric_name="val_loss", goal="minimize", noise=0.0,
                    min_progress=0.25)  # fmt: skip
    other = [ProgressPoint(i / 10, {"lr": math.nan}) for i in range(1, 11)]
    assert watch(pruner, other) is None
