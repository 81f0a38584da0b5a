"""The sampling protocol as pure functions: plain data in, how many samples out."""

from __future__ import annotations

from types import SimpleNamespace

from ratchet.decide.judge import NoiseAwareJudge, StrictJudge, Verdict
from ratchet.decide.sampling import (
    baseline_complete,
    decided,
    interleaved,
    judge_now,
    judged_reference,
    needs_top_up,
    next_sample,
    reference,
    remeasure_due,
)
from ratchet.models import Experiment
from ratchet.study import DecisionSpec


def exp(id: int, status: str, samples: list[float], commit: str = "a") -> Experiment:
    metric = sum(samples) / len(samples) if samples else None
    return Experiment(id=id, tag="t", parent=None, commit=commit, status=status, metric=metric,
                      samples=samples)  # fmt: skip


def study(metric: str = "score", **decision: object) -> SimpleNamespace:
    return SimpleNamespace(decision=DecisionSpec(**decision), metric=SimpleNamespace(name=metric))


def test_the_incumbent_reference_holds_every_sample_of_its_commit() -> None:
    history = [exp(1, "baseline", [5.0, 5.3, 4.7]), exp(2, "discard", [6.0], "b"),
               exp(3, "remeasure", [5.1])]  # fmt: skip
    assert reference(history, history[0]) == [5.0, 5.3, 4.7, 5.1]


def test_a_deterministic_study_passes_one_sample_twice() -> None:
    history = [exp(1, "baseline", [5.0, 5.0]), exp(2, "keep", [4.0], "b")]
    assert reference(history, history[1]) == [4.0, 4.0]  # zero spread, decided on one sample
    assert not remeasure_due(history * 5, study(remeasure_every=1), NoiseAwareJudge())


def test_remeasure_counts_the_candidates_that_ran_since_the_incumbent_was_measured() -> None:
    base = exp(1, "baseline", [5.0, 5.3, 4.7])
    ran = [exp(i, s, [], "x") for i, s in ((2, "crash"), (3, "rejected"), (4, "discard"))]
    judge = NoiseAwareJudge()
    assert remeasure_due([base, *ran], study(remeasure_every=2), judge)  # rejected costs nothing
    assert not remeasure_due([base, *ran], study(remeasure_every=3), judge)
    assert not remeasure_due([base, *ran], study(remeasure_every=2), StrictJudge())
    assert not remeasure_due([base, *ran, exp(5, "remeasure", [5.0])], study(remeasure_every=2),
                             judge)  # fmt: skip


def test_baseline_samples_and_top_ups() -> None:
    noisy = NoiseAwareJudge()
    assert baseline_complete([5.0], study(), StrictJudge())
    assert baseline_complete([5.0, 5.0], study(), noisy)  # two equal: deterministic
    assert not baseline_complete([5.0, 5.1], study(baseline_samples=3), noisy)
    assert needs_top_up([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])  # the next candidate sample is the 4th
    assert not needs_top_up([1.0], [1.0, 2.0, 3.0])


def test_a_judge_still_undecided_at_the_cap_discards() -> None:
    assert decided(Verdict("more", "p 0.2"), 20) == ("discard", "undecided after 20 samples: p 0.2")
    assert decided(Verdict("keep", "p 0.01"), 3) == ("keep", "p 0.01")


# --- interleaving ----------------------------------------------------------------------


def _plan(looks: int, *, interleave: bool, incumbent: int = 3) -> str:
    """The order of runs the protocol asks for, judging after each ``judge_now``: I, C, |."""
    samples: list[float] = []
    alongside: list[float] = []
    reference = [1.0] * incumbent
    order = ""
    while order.count("|") < looks:
        turn = next_sample(samples, alongside, reference, interleave=interleave, exact=False)
        if turn == "incumbent":
            alongside.append(1.0)
            reference.append(1.0)
        else:
            samples.append(1.0)
        order += turn[0].upper()
        if judge_now(turn, samples, alongside, interleave=interleave):
            order += "|"
    return order


def test_interleaved_samples_come_in_pairs_whose_order_alternates() -> None:
    # A/B/B/A: a steady drift favours neither side over every two pairs
    assert _plan(4, interleave=True) == "CI|IC|CI|IC|"  # the candidate first: a crash costs one


def test_without_interleaving_the_candidate_goes_first_and_the_incumbent_is_topped_up() -> None:
    assert _plan(5, interleave=False) == "C|C|C|IC|IC|"  # 3 baseline samples: top-ups from the 4th
    exact = next_sample([1.0, 1.0, 1.0], [], [1.0], interleave=True, exact=True)
    assert exact == "candidate"  # a deterministic study needs neither pairs nor top-ups


def test_interleave_setting_auto_follows_the_metric_name() -> None:
    noisy = NoiseAwareJudge()
    assert interleaved(study("runtime_ms"), noisy)
    assert not interleaved(study("val_bpb"), noisy)
    assert interleaved(study("val_bpb", interleave=True), noisy)
    assert not interleaved(study("latency", interleave=False), noisy)
    assert not interleaved(study("runtime_ms", interleave=True), StrictJudge())


def test_judged_reference_is_the_mean_of_every_incumbent_sample() -> None:
    history = [exp(1, "baseline", [108.4, 108.2, 110.0]), exp(2, "remeasure", [128.9]),
               exp(3, "remeasure", [128.5])]  # fmt: skip
    assert history[0].metric == 108.86666666666667  # what status and try printed before
    assert judged_reference(history, history[0]) == (108.4 + 108.2 + 110.0 + 128.9 + 128.5) / 5
