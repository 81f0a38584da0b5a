"""Decision rules: strict, noise-aware (Welch), simplicity, and the statistics under them."""

from __future__ import annotations

import math
import random

import pytest

from ratchet.decide.judge import NoiseAwareJudge, StrictJudge, make_judge, noise
from ratchet.decide.stats import regularized_beta, spread, t_sf, welch
from ratchet.errors import ConfigError
from ratchet.study import DecisionSpec

INCUMBENT = [0.430, 0.424, 0.436]  # mean 0.430, spread 0.006
STEADY = [5.0, 5.0]  # a deterministic study's baseline


def mirrored(values: list[float]) -> list[float]:
    return [-v for v in values]


# --- statistics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "df", "expected"),
    [
        (2.0, 10, 0.0367),  # tables: one-sided p for t = 2.0, df = 10
        (1.812461, 10, 0.05),  # the 95 % critical value for df = 10
        (12.706, 1, 0.025),  # the 97.5 % critical value for df = 1
        (1.0, 1, 0.25),  # Cauchy: P(T > 1) = 1/4
        (0.0, 4, 0.5),
        (1.96, 1e6, 0.025),  # a huge df is the normal distribution
    ],
)
def test_t_tail_matches_known_values(t: float, df: float, expected: float) -> None:
    assert t_sf(t, df) == pytest.approx(expected, abs=2e-4)


@pytest.mark.parametrize("t", [0.3, 1.5, 4.0, 25.0])
def test_t_tail_for_two_df_matches_its_closed_form(t: float) -> None:
    assert t_sf(t, 2.0) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), rel=1e-9)


@pytest.mark.parametrize("df", [0.7, 2.5, 4.3, 30.0])
def test_t_tail_is_symmetric_for_fractional_df(df: float) -> None:
    assert t_sf(-1.7, df) == pytest.approx(1 - t_sf(1.7, df), rel=1e-12)


def test_t_tail_edges() -> None:
    assert t_sf(math.inf, 3) == 0.0 and t_sf(-math.inf, 3) == 1.0
    assert math.isnan(t_sf(math.nan, 3))
    with pytest.raises(ValueError):
        t_sf(1.0, 0)


@pytest.mark.parametrize(("x", "a", "b", "expected"), [
    (0.3, 1, 1, 0.3),  # uniform
    (0.3, 3, 1, 0.3**3),  # I_x(a, 1) = x^a
    (0.5, 7.5, 7.5, 0.5),  # symmetric
    (0.0, 2, 3, 0.0),
    (1.0, 2, 3, 1.0),
])  # fmt: skip
def test_regularized_beta_known_values(x: float, a: float, b: float, expected: float) -> None:
    assert regularized_beta(x, a, b) == pytest.approx(expected, rel=1e-10, abs=1e-15)


def test_spread_of_equal_samples_is_exactly_zero() -> None:
    assert spread([0.1, 0.1, 0.1]) == 0.0  # whatever the rounding of their mean
    assert spread([5.0]) == 0.0 and noise([]) == 0.0
    assert noise([1.0, 2.0, 3.0]) == pytest.approx(1.0)


def test_welch_degrees_of_freedom() -> None:
    test = welch([1.0, 2.0, 3.0, 4.0], [1.0, 3.0])
    # var 5/3 over 4 and var 2 over 2: df = (5/12 + 1)^2 / ((5/12)^2 / 3 + 1 / 1)
    assert test.df == pytest.approx((5 / 12 + 1) ** 2 / ((5 / 12) ** 2 / 3 + 1))
    assert test.difference == pytest.approx(0.5)


def test_welch_lends_the_incumbent_variance_to_a_single_sample() -> None:
    test = welch([0.0], [1.0, 2.0, 3.0])
    assert test.standard_error == pytest.approx(math.sqrt(1 / 1 + 1 / 3))
    assert test.df == 2  # only the incumbent's variance was estimated


# --- strict ------------------------------------------------------------------------------


def test_strict_keeps_only_a_strictly_better_sample() -> None:
    judge = StrictJudge()
    assert judge.decide([0.9], [1.0], "minimize").decision == "keep"
    assert judge.decide([1.0], [1.0], "minimize").decision == "discard"
    assert judge.decide([1.1], [1.0], "maximize", lines_added=50).decision == "keep"


# --- noise-aware: one sample decides -----------------------------------------------------


@pytest.mark.parametrize(("value", "decision"), [(4.9, "keep"), (5.0, "discard"), (5.1, "discard")])
def test_deterministic_study_decides_on_one_sample(value: float, decision: str) -> None:
    verdict = NoiseAwareJudge().decide([value], STEADY, "minimize")
    assert verdict.decision == decision
    assert "no spread" in verdict.reason


def test_deterministic_maximize() -> None:
    judge = NoiseAwareJudge()
    assert judge.decide([5.1], STEADY, "maximize").decision == "keep"
    assert judge.decide([4.9], STEADY, "maximize").decision == "discard"


def test_single_sample_incumbent_asks_a_better_candidate_to_repeat() -> None:
    judge = NoiseAwareJudge()
    assert judge.decide([4.0], [5.0], "minimize").decision == "more"
    assert judge.decide([4.0, 4.0], [5.0], "minimize").decision == "keep"  # still deterministic
    assert judge.decide([6.0], [5.0], "minimize").decision == "discard"


def test_clear_loss_is_discarded_on_one_sample() -> None:
    verdict = NoiseAwareJudge().decide([0.45], WELL_KNOWN, "minimize")
    assert verdict.decision == "discard"
    assert "clearly worse" in verdict.reason and "(n=10)" in verdict.reason
    assert "9 df" in verdict.reason  # t with the incumbent's m - 1 degrees of freedom


def test_three_steady_samples_do_not_make_one_slow_sample_clearly_worse() -> None:
    # 3.3 sigmas behind: past a fixed 2 sigma, not past t's 99.5 % bound for 2 df (9.9)
    assert NoiseAwareJudge().decide([0.45], INCUMBENT, "minimize").decision == "more"


def test_a_loss_within_two_sigmas_gets_a_second_look() -> None:
    assert NoiseAwareJudge().decide([0.438], INCUMBENT, "minimize").decision == "more"


# --- noise-aware: sampling until significant ---------------------------------------------


def test_ambiguous_candidate_asks_for_more() -> None:
    verdict = NoiseAwareJudge().decide([0.425, 0.428], INCUMBENT, "minimize")
    assert verdict.decision == "more"
    assert "p=" in verdict.reason


GAIN = [0.400, 0.401, 0.399, 0.400, 0.400]  # 0.03 better: five of the incumbent's sigmas
WELL_KNOWN = [0.430, 0.424, 0.436, 0.431, 0.429, 0.427, 0.433, 0.430, 0.428, 0.432]


def test_significant_improvement_is_kept_with_numbers_in_the_reason() -> None:
    verdict = NoiseAwareJudge(max_samples=5).decide(GAIN, INCUMBENT, "minimize")
    assert verdict.decision == "keep"
    assert verdict.reason.startswith("0.4000 ± 0.0007 (n=5) beats 0.4300 ± 0.0060 (n=3), p=")


def test_three_incumbent_samples_leave_room_for_doubt_until_the_last_look() -> None:
    # with 2 degrees of freedom even five sigmas is p ~ 0.006: not enough for an early look
    judge = make_judge(DecisionSpec())  # 3 of max_samples looks: far from the last one
    assert judge.decide(GAIN[:3], INCUMBENT, "minimize").decision == "more"


def test_clear_gain_over_a_well_measured_incumbent_is_kept_early() -> None:
    judge = NoiseAwareJudge()
    assert judge.decide(GAIN[:1], WELL_KNOWN, "minimize").decision == "more"  # one is never enough
    assert judge.decide(GAIN[:2], WELL_KNOWN, "minimize").decision == "keep"


def test_marginal_gain_needs_every_sample() -> None:
    judge = NoiseAwareJudge(max_samples=5)
    samples = [0.415, 0.418, 0.412, 0.416, 0.414]
    assert judge.decide(samples[:3], INCUMBENT, "minimize").decision == "more"
    assert judge.decide(samples, INCUMBENT, "minimize").decision == "keep"


def test_max_samples_reached_without_significance_is_discarded() -> None:
    samples = [0.428, 0.425, 0.430, 0.427, 0.426]
    verdict = NoiseAwareJudge(max_samples=5).decide(samples, INCUMBENT, "minimize")
    assert verdict.decision == "discard"
    assert "after 5 samples" in verdict.reason


def test_candidate_far_behind_a_one_sigma_gain_is_discarded_after_two_samples() -> None:
    judge = NoiseAwareJudge()
    verdict = judge.decide([0.436, 0.438], INCUMBENT, "minimize")  # a sigma worse, not two
    assert verdict.decision == "discard"
    assert "no better" in verdict.reason
    # slightly worse after two samples is still within reach of a real gain: look again
    assert judge.decide([0.431, 0.433], INCUMBENT, "minimize").decision == "more"


@pytest.mark.parametrize(
    "samples", [[0.438], [0.425, 0.428], GAIN, GAIN[:3], [0.45], [0.431, 0.433]]
)
def test_maximize_mirrors_minimize(samples: list[float]) -> None:
    judge = NoiseAwareJudge()
    low = judge.decide(samples, INCUMBENT, "minimize").decision
    high = judge.decide(mirrored(samples), mirrored(INCUMBENT), "maximize").decision
    assert low == high


def test_min_delta_raises_the_bar() -> None:
    small, large = NoiseAwareJudge(max_samples=5, min_delta=0.01), NoiseAwareJudge(min_delta=0.05)
    assert small.decide(GAIN, INCUMBENT, "minimize").decision == "keep"
    verdict = large.decide(GAIN, INCUMBENT, "minimize")
    assert verdict.decision == "discard"


def test_min_delta_in_a_deterministic_study() -> None:
    judge = NoiseAwareJudge(min_delta=0.2)
    assert judge.decide([4.9], STEADY, "minimize").decision == "discard"
    assert judge.decide([4.7], STEADY, "minimize").decision == "keep"


def test_the_judge_never_asks_beyond_max_samples() -> None:
    rng = random.Random(7)
    judge = NoiseAwareJudge(max_samples=4)
    for _ in range(300):
        incumbent = [rng.gauss(0, 1) for _ in range(rng.randint(1, 6))]
        samples = [rng.gauss(0, 1) for _ in range(4)]
        assert judge.decide(samples, incumbent, rng.choice(["minimize", "maximize"])).decision in (
            "keep",
            "discard",
        )


def _kept(judge: NoiseAwareJudge, gain: float, trials: int, seed: int) -> float:
    """Fraction kept when sampled as the loop does (3 baseline samples, sigma 1)."""
    rng, kept = random.Random(seed), 0
    for _ in range(trials):
        incumbent = [rng.gauss(0, 1) for _ in range(3)]
        samples: list[float] = []
        while True:
            samples.append(rng.gauss(-gain, 1))
            verdict = judge.decide(samples, incumbent, "minimize")
            if verdict.decision != "more":
                break
        kept += verdict.decision == "keep"
    return kept / trials


def test_noise_is_rarely_kept_and_a_clear_gain_usually_is() -> None:
    judge = make_judge(DecisionSpec())
    assert isinstance(judge, NoiseAwareJudge)
    assert _kept(judge, 0.0, 800, seed=1) <= 0.06  # strict keeps about half
    assert _kept(judge, 3.0, 200, seed=2) >= 0.8


# --- simplicity --------------------------------------------------------------------------


def test_removing_code_at_equal_metric_is_kept_when_simplicity_counts() -> None:
    samples = [0.431, 0.433, 0.430, 0.432, 0.431]  # all of max_samples, no better
    verdict = NoiseAwareJudge(complexity_weight=0.1, max_samples=5).decide(
        samples, INCUMBENT, "minimize", lines_added=2, lines_removed=12
    )
    assert verdict.decision == "keep"
    assert (
        verdict.reason.startswith("simpler at equal metric") and "10 lines fewer" in verdict.reason
    )
    off = NoiseAwareJudge(max_samples=5).decide(samples, INCUMBENT, "minimize", lines_removed=12)
    assert off.decision == "discard"


def test_removing_code_does_not_excuse_a_real_loss() -> None:
    judge = NoiseAwareJudge(complexity_weight=0.1)
    worse = judge.decide([0.445, 0.446], INCUMBENT, "minimize", lines_removed=30)
    assert worse.decision == "discard"
    clear = judge.decide([0.46], WELL_KNOWN, "minimize", lines_removed=30)
    assert clear.decision == "discard"


def test_simpler_deterministic_candidate_at_equal_metric_is_kept() -> None:
    judge = NoiseAwareJudge(complexity_weight=0.5)
    assert judge.decide([5.0], STEADY, "minimize", lines_removed=3).decision == "keep"
    assert judge.decide([5.0], STEADY, "minimize", lines_added=3).decision == "discard"


def test_small_gain_does_not_pay_for_much_added_code() -> None:
    samples = GAIN  # 0.03 better; the incumbent's spread is 0.006
    costly = NoiseAwareJudge(max_samples=5, complexity_weight=0.1).decide(
        samples, INCUMBENT, "minimize", lines_added=100
    )  # needs 0.1 * 100 * 0.006 = 0.06
    assert costly.decision == "discard"
    assert "does not pay for 100 added lines" in costly.reason
    cheap = NoiseAwareJudge(max_samples=5, complexity_weight=0.01).decide(
        samples, INCUMBENT, "minimize", lines_added=100
    )  # needs 0.006
    assert cheap.decision == "keep"
    free = NoiseAwareJudge(max_samples=5).decide(samples, INCUMBENT, "minimize", lines_added=100)
    assert free.decision == "keep"


def test_added_code_in_a_deterministic_study_is_priced_in_its_mean() -> None:
    judge = NoiseAwareJudge(complexity_weight=1.0)  # 0.1 % of 5.0 per line: 0.05 for 10
    assert judge.decide([4.9], STEADY, "minimize", lines_added=10).decision == "keep"
    assert judge.decide([4.99], STEADY, "minimize", lines_added=10).decision == "discard"


# --- construction ------------------------------------------------------------------------


def test_make_judge_reads_the_decision_section() -> None:
    judge = make_judge(DecisionSpec(confidence=0.99, min_delta=0.1, max_samples=7))
    assert isinstance(judge, NoiseAwareJudge)
    assert (judge.confidence, judge.min_delta, judge.max_samples) == (0.99, 0.1, 7)
    assert make_judge(DecisionSpec(rule="strict")).name == "strict"


def test_unknown_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="noise-aware"):
        make_judge(DecisionSpec.model_construct(rule="lucky"))


def test_first_call_without_samples_asks_for_one() -> None:
    assert NoiseAwareJudge().decide([], INCUMBENT, "minimize").decision == "more"


# --- timing metrics: small samples, a noise floor, pairs (issue 15) ----------------------

BENCH_BASELINE = [106.6, 108.5, 110.4]  # ms: three samples, ±1.9 ms


def test_one_slow_run_after_a_steady_baseline_is_not_clearly_worse() -> None:
    # The same code measured 108.4, 108.2 and 128.9 ms: its one slow run is no verdict
    for judge in (make_judge(DecisionSpec(), "runtime_ms"), make_judge(DecisionSpec(), "score")):
        verdict = judge.decide([128.9], BENCH_BASELINE, "minimize")
        assert verdict.decision == "more", verdict.reason
    assert make_judge(DecisionSpec(), "runtime_ms").decide(
        [108.4, 128.9], BENCH_BASELINE, "minimize"
    ).decision != "keep"


def test_the_noise_floor_excuses_a_slow_run_a_too_steady_baseline_would_condemn() -> None:
    steady = [108.4, 108.5, 108.6]  # ±0.1 ms: luck, for a 108 ms benchmark
    plain = make_judge(DecisionSpec(), "score").decide([115.0], steady, "minimize")
    assert plain.decision == "discard" and "clearly worse" in plain.reason
    timed = make_judge(DecisionSpec(), "runtime_ms").decide([115.0], steady, "minimize")
    assert timed.decision == "more"  # 2 % of 108.5 ms is 2.2 ms of assumed noise
    off = make_judge(DecisionSpec(noise_floor=0.0), "runtime_ms")
    assert off.decide([115.0], steady, "minimize").decision == "discard"


def test_a_timing_metric_is_never_read_as_deterministic() -> None:
    plain = make_judge(DecisionSpec(), "score").decide([99.0], [100.0, 100.0], "minimize")
    assert plain.decision == "keep"  # deterministic: the one sample is the truth
    timed = make_judge(DecisionSpec(), "runtime_ms").decide([99.0], [100.0, 100.0], "minimize")
    assert timed.decision == "more"  # 1 % better is within the 2 % floor: look again


def test_pairs_see_through_a_machine_that_got_faster() -> None:
    history = [100.0, 100.5, 99.5]  # measured before the machine sped up by 15 %
    beside = [85.1, 84.9, 85.2, 84.8]  # the incumbent, measured in turn with the candidate
    judge = NoiseAwareJudge(max_samples=4, noise_floor=0.02)
    noop = [85.0, 85.1, 84.9, 85.0]
    paired = judge.decide(noop, history + beside, "minimize", alongside=beside)
    assert paired.decision == "discard" and "paired" in paired.reason
    fooled = judge.decide(noop, history, "minimize")  # against the old samples alone
    assert fooled.decision == "keep"
    faster = [76.5, 76.4, 76.6, 76.5]  # 10 % better, on the same fast machine
    assert judge.decide(faster, history + beside, "minimize", alongside=beside).decision == "keep"


def test_one_pair_borrows_the_incumbent_spread() -> None:
    judge = NoiseAwareJudge(noise_floor=0.02)
    incumbent = [100.0, 100.5, 99.5, 101.0]
    assert judge.decide([103.0], incumbent, "minimize", alongside=[101.0]).decision == "more"
    clear = judge.decide([160.0], incumbent, "minimize", alongside=[101.0])
    assert clear.decision == "discard" and "clearly worse" in clear.reason
    with pytest.raises(ValueError):
        judge.decide([1.0, 2.0], incumbent, "minimize", alongside=[101.0])
