"""What the noise-aware judge buys: no-op changes refused, real ones kept, samples spent.

Pure simulation (seeded ``random``, no processes): the metric is minimized and
every measurement is the true value plus normal noise with sigma 1. Judges
come from the real API, ``make_judge(DecisionSpec(...))``, and are sampled as
``ratchet.decide.sampling`` says: the baseline takes ``baseline_samples`` samples
(strict: one); a candidate is sampled while the judge says ``more``, at most
``max_samples`` times (a ``more`` at the cap is a discard), and before each
further candidate sample the incumbent is topped up to as many samples as the
candidate will have (``needs_top_up``; rows marked "no top-up" skip that).

Table 1, one decision at a time: each trial is a fresh baseline and one
candidate that is a no-op, or truly 1σ or 2σ better. "kept" is the fraction
of trials kept (goals: no-op ≤ 5 %, 1σ ≥ 80 %); runs are per candidate:
its samples plus the incumbent top-ups it caused, the baseline's not counted.
``--seeds`` × ``--proposals`` trials per cell.

Table 2, whole studies of ``--proposals`` proposals, ``--seeds`` times, as
the loop runs them: a keep makes the candidate's samples the incumbent's, and
every ``remeasure_every`` (10) candidates the incumbent gets one more sample.
"no-op study": every proposal changes nothing; "illusory gain" is how much
better than the truth the final incumbent's mean looks (what the ledger
would claim as progress, in σ). "1σ study": every proposal is truly 1σ better
than the current incumbent; "true gain" is the real improvement reached.
"runs/proposal" counts every run: baseline, candidates, re-measurements
and top-ups.
The "fresh after keep" rows replay the loop with one change it does not make
today: after a keep, the new incumbent is measured ``baseline_samples`` times
afresh and its (selection-biased) keep samples are dropped.
The "interleaved" rows sample as ``[decision] interleave = true`` does: an
incumbent sample before each candidate sample, judged in pairs
(``next_sample``, the judge's ``alongside``).

Table 3, a machine that drifts: a timing metric (``runtime_ms``, 100 ms with
a noise of 2 ms, so its 2 % noise floor applies and interleaving is on by
default) measured on a machine whose speed changes after the baseline, while
``--gap`` (30) other runs go by before the candidate is judged: a step of
15 % (another job ends or starts) or a linear drift of 15 % over 60 runs
(then level). Each trial is a fresh baseline and one candidate that is a
no-op or truly 1σ (2 ms) or 2σ better; same goals as table 1. "top-ups" is
the protocol a non-timing study keeps (``interleave = false``).

    python benchmarks/noise.py [--seeds 20] [--proposals 100] [--gap 30]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist, fmean

from ratchet.decide.judge import Judge, make_judge
from ratchet.decide.sampling import judge_now, next_sample
from ratchet.study import DecisionSpec

GOAL = "minimize"
SETTINGS = [  # (label, spec, top-up) rows of table 1
    ("strict", DecisionSpec(rule="strict"), False),
    ("noise-aware (defaults)", DecisionSpec(), True),
    ("noise-aware, no top-up", DecisionSpec(), False),
    ("noise-aware", DecisionSpec(baseline_samples=10), True),
    ("noise-aware, interleaved", DecisionSpec(interleave=True), True),
]
TIMING = "runtime_ms"  # table 3's metric: a time, so the judge assumes at least 2 % noise
RUNTIME, JITTER = 100.0, 2.0  # its true value and noise (ms)
DRIFT = 0.15  # how far the machine's speed moves in table 3
SCENARIOS: dict[str, Callable[[int, int], float]] = {  # speed factor of run r, k baseline runs
    "steady": lambda r, k: 1.0,
    "15 % slower after the baseline": lambda r, k: 1.0 + DRIFT * (r >= k),
    "15 % faster after the baseline": lambda r, k: 1.0 - DRIFT * (r >= k),
    "drifting 15 % slower over 60 runs": lambda r, k: 1.0 + DRIFT * min(r, 60) / 60,
    "drifting 15 % faster over 60 runs": lambda r, k: 1.0 - DRIFT * min(r, 60) / 60,
}


@dataclass
class Tally:
    kept: int = 0
    candidates: int = 0
    samples: int = 0
    gains: list[float] = field(default_factory=list)

    def add(self, kept: bool, samples: int) -> None:
        self.kept += kept
        self.candidates += 1
        self.samples += samples

    @property
    def rate(self) -> str:
        return f"{self.kept / max(1, self.candidates):.1%}"

    @property
    def per_candidate(self) -> str:
        return f"{self.samples / max(1, self.candidates):.2f}"


def measure(rng: random.Random, truth: float) -> float:
    return truth + rng.gauss(0.0, 1.0)


def baseline_size(judge: Judge, spec: DecisionSpec) -> int:
    return 1 if judge.name == "strict" else spec.baseline_samples


def candidate(
    rng: random.Random,
    judge: Judge,
    spec: DecisionSpec,
    truth: tuple[float, float],
    incumbent: list[float],
    top_up: bool,
    draw: Callable[[random.Random, float], float] = measure,
) -> tuple[bool, list[float], int]:
    """Sample as the loop does until the judge decides or max_samples is reached.

    ``truth`` is (candidate, incumbent); top-ups and interleaved incumbent
    samples are appended to ``incumbent`` and counted in the third value
    returned. Which side runs next is ``sampling.next_sample``'s answer, as in
    ``run/trial.py``; ``draw`` measures one run.
    """
    interleave = spec.interleave is True and judge.name != "strict"
    samples: list[float] = []
    alongside: list[float] = []
    extra = 0
    while True:
        turn = next_sample(
            samples, alongside, incumbent, interleave=interleave, exact=not top_up
        )
        if turn == "incumbent":
            value = draw(rng, truth[1])
            incumbent.append(value)
            alongside.append(value)
            extra += 1
        else:
            samples.append(draw(rng, truth[0]))
        if not judge_now(turn, samples, alongside, interleave=interleave):
            continue
        verdict = judge.decide(samples, incumbent, GOAL, alongside=alongside if interleave else ())
        if verdict.decision != "more" or len(samples) >= spec.max_samples:
            return verdict.decision == "keep", samples, extra


def one_decision(spec: DecisionSpec, gain: float, trials: int, seed: int, top_up: bool) -> Tally:
    judge, rng, tally = make_judge(spec), random.Random(seed), Tally()
    for _ in range(trials):
        incumbent = [measure(rng, 0.0) for _ in range(baseline_size(judge, spec))]
        kept, samples, extra = candidate(rng, judge, spec, (-gain, 0.0), incumbent, top_up)
        tally.add(kept, len(samples) + extra)
    return tally


def one_study(
    spec: DecisionSpec,
    gain: float,
    proposals: int,
    seed: int,
    fresh: bool,
    tally: Tally,
    top_up: bool = True,
) -> None:
    """A study of proposals each ``gain`` better than the incumbent's true value."""
    judge, rng = make_judge(spec), random.Random(seed)
    strict = judge.name == "strict"
    truth = 0.0
    incumbent = [measure(rng, truth) for _ in range(baseline_size(judge, spec))]
    tally.samples += len(incumbent)
    since = 0  # candidates run since the incumbent was last measured
    for _ in range(proposals):
        if not strict and spec.remeasure_every and since >= spec.remeasure_every:
            incumbent.append(measure(rng, truth))
            tally.samples += 1
            since = 0
        pair = (truth - gain, truth)
        kept, samples, extra = candidate(rng, judge, spec, pair, incumbent, top_up and not strict)
        tally.add(kept, len(samples) + extra)
        since = 0 if extra else since + 1  # a top-up row restarts the re-measurement count
        if kept:
            truth, incumbent, since = truth - gain, samples, 0
            if fresh:
                incumbent = [measure(rng, truth) for _ in range(spec.baseline_samples)]
                tally.samples += len(incumbent)
    tally.gains.append((fmean(incumbent) - truth) if gain == 0 else -truth)


def table1(seeds: int, proposals: int) -> None:
    trials = seeds * proposals
    print(f"Table 1: one decision at a time ({trials} trials per cell; σ = 1)\n")
    print(
        "| rule | baseline k | max samples | no-op kept | 1σ kept | 2σ kept "
        "| runs/no-op | runs/1σ |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, spec, top_up in SETTINGS:
        noop, one, two = (one_decision(spec, g, trials, i, top_up) for i, g in enumerate((0, 1, 2)))
        k = 1 if spec.rule == "strict" else spec.baseline_samples
        print(
            f"| {label} | {k} | {1 if spec.rule == 'strict' else spec.max_samples} "
            f"| {noop.rate} | {one.rate} | {two.rate} "
            f"| {noop.per_candidate} | {one.per_candidate} |"
        )
    z = NormalDist().inv_cdf(0.95)
    ceilings = ", ".join(f"k={k}: {NormalDist().cdf(math.sqrt(k) - z):.0%}" for k in (3, 10, 15))
    print(f"\nCeiling of '1σ kept' for any 5 % test with k incumbent samples: {ceilings}")


def table2(seeds: int, proposals: int) -> None:
    print(f"\nTable 2: whole studies ({seeds} studies of {proposals} proposals per cell)\n")
    print(
        "| rule | baseline k | max samples | no-op study: kept | illusory gain "
        "| 1σ study: kept | true gain | runs/proposal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = [(label, spec, False, top_up) for label, spec, top_up in SETTINGS[:3]]
    rows += [("noise-aware, fresh after keep", SETTINGS[1][1], True, True)]
    rows += [("noise-aware, interleaved", SETTINGS[4][1], False, True)]
    for label, spec, fresh, top_up in rows:
        noop, real = Tally(), Tally()
        for seed in range(seeds):
            one_study(spec, 0.0, proposals, seed, fresh, noop, top_up)
            one_study(spec, 1.0, proposals, 1000 + seed, fresh, real, top_up)
        k = 1 if spec.rule == "strict" else spec.baseline_samples
        per = (noop.samples + real.samples) / max(1, noop.candidates + real.candidates)
        print(
            f"| {label} | {k} | {1 if spec.rule == 'strict' else spec.max_samples} "
            f"| {noop.rate} | {-fmean(noop.gains):.2f} σ | {real.rate} "
            f"| {fmean(real.gains):.1f} σ | {per:.2f} |"
        )


@dataclass
class Machine:
    """Table 3's machine: counts its runs and slows or speeds them as ``speed`` says."""

    speed: Callable[[int, int], float]  # of (run index, baseline samples)
    k: int
    runs: int = 0

    def draw(self, rng: random.Random, truth: float) -> float:
        factor = self.speed(self.runs, self.k)
        self.runs += 1
        return (truth + rng.gauss(0.0, JITTER)) * factor


def drifting(
    spec: DecisionSpec, scenario: str, gain: float, trials: int, seed: int, gap: int
) -> Tally:
    """Table 3's cell: baselines and candidates on a machine whose speed follows ``scenario``."""
    judge, rng, tally = make_judge(spec, TIMING), random.Random(seed), Tally()
    for _ in range(trials):
        machine = Machine(SCENARIOS[scenario], spec.baseline_samples)
        incumbent = [machine.draw(rng, RUNTIME) for _ in range(spec.baseline_samples)]
        machine.runs += gap  # other experiments run meanwhile
        truth = (RUNTIME - gain * JITTER, RUNTIME)
        kept, samples, extra = candidate(rng, judge, spec, truth, incumbent, True, machine.draw)
        tally.add(kept, len(samples) + extra)
    return tally


def table3(seeds: int, proposals: int, gap: int) -> None:
    trials = seeds * proposals
    print(
        f"\nTable 3: a drifting machine, one decision at a time ({trials} trials per cell;"
        f" {TIMING} {RUNTIME:g} ± {JITTER:g}, candidate judged {gap} runs after the baseline)\n"
    )
    print("| machine | protocol | no-op kept | 1σ kept | 2σ kept | runs/no-op | runs/1σ |")
    print("|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        for label, interleave in (("top-ups", False), ("interleaved (auto)", True)):
            spec = DecisionSpec(interleave=interleave)
            noop, one, two = (
                drifting(spec, scenario, g, trials, i, gap) for i, g in enumerate((0, 1, 2))
            )
            print(
                f"| {scenario} | {label} | {noop.rate} | {one.rate} | {two.rate} "
                f"| {noop.per_candidate} | {one.per_candidate} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--proposals", type=int, default=100)
    parser.add_argument("--gap", type=int, default=30, help="table 3: runs between")
    args = parser.parse_args()
    start = time.perf_counter()
    table1(args.seeds, args.proposals)
    table2(args.seeds, args.proposals)
    table3(args.seeds, args.proposals, args.gap)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
