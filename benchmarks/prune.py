"""What early stopping saves, and what it wrongly stops.

Synthetic mode (the default; it produced the figures in the report): curves
shaped like a small nanoGPT run's loss, ``a + b * exp(-c * t)`` over 40
progress lines, with a per-run offset of the asymptote (seed-to-seed noise,
σ = 0.005, which is also the final metric's noise) and per-point jitter (a
training loss on one batch: 0.03; a validation loss: 0.005). The incumbent is
a baseline of 3 samples; its first run's curve is the reference, as in
``ratchet.run.trial``. Candidates are a mix of what a proposer produces:

    neutral (30 %)   asymptote ± 0.002
    worse   (35 %)   asymptote + 0.01 … 0.15, speed ± 20 %
    broken  (10 %)   half diverge (nan from 10-60 %), half end 0.5 … 2 worse
    better  (15 %)   asymptote - 0.005 … 0.04
    late    (10 %)   learns 30 % slower but ends better: behind all the way
                     through the middle of the run (the pruner's blind spot);
                     each key is run with and without them (then 25 % better)

Each candidate is judged twice with the same random draws: without pruning
(sampled while the noise-aware judge says ``more``) and with a ``Pruner``
watching every run. "saved" is the budget not spent on candidates that end
as discards either way (goal ≥ 30 %); "kept, pruned" is the fraction of the
candidates the judge would have kept that the pruner stopped (goal ≤ 5 %).

    python benchmarks/prune.py [--seeds 10] [--candidates 100]
    python benchmarks/prune.py --from-ledger STUDY_DIR

``--from-ledger`` replays real runs instead: each kept or discarded
experiment's ``.ratchet/logs/<id>/run.log`` (first sample only) against its
parent's, with the study's metric name, and prints where the pruner would
have stopped it.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ratchet.decide.judge import NoiseAwareJudge, noise
from ratchet.decide.prune import Pruner
from ratchet.metrics import MetricParser, ProgressPoint

POINTS = 40
SEED_SIGMA = 0.005
METRIC = "val_loss"
MIN_PROGRESS = 0.25


@dataclass(frozen=True)
class Shape:
    a: float = 1.0  # asymptote
    b: float = 2.5
    c: float = 6.0
    diverge_at: float | None = None


@dataclass
class Run:
    final: float
    curve: list[ProgressPoint]


def run(rng: random.Random, shape: Shape, key: str, jitter: float) -> Run:
    offset = rng.gauss(0.0, SEED_SIGMA)
    points = []
    for i in range(1, POINTS + 1):
        t = i / POINTS
        value = shape.a + offset + shape.b * math.exp(-shape.c * t) + rng.gauss(0.0, jitter)
        if shape.diverge_at is not None and t >= shape.diverge_at:
            value = math.nan
        points.append(ProgressPoint(progress=t, values={"step": float(i * 25), key: value}))
    final = shape.a + offset + shape.b * math.exp(-shape.c)
    return Run(math.nan if shape.diverge_at is not None else final, points)


def candidate_shape(rng: random.Random, late: bool) -> tuple[str, Shape]:
    kinds = ["neutral"] * 30 + ["worse"] * 35 + ["broken"] * 10 + ["better"] * 15
    kind = rng.choice(kinds + ["late"] * 10 if late else kinds + ["better"] * 10)
    if kind == "neutral":
        return kind, Shape(a=1.0 + rng.gauss(0, 0.002))
    if kind == "worse":
        return kind, Shape(a=1.0 + rng.uniform(0.01, 0.15), c=6.0 * rng.uniform(0.8, 1.2))
    if kind == "broken":
        if rng.random() < 0.5:
            return kind, Shape(diverge_at=rng.uniform(0.1, 0.6))
        return kind, Shape(a=1.0 + rng.uniform(0.5, 2.0))
    if kind == "better":
        return kind, Shape(a=1.0 - rng.uniform(0.005, 0.04))
    return kind, Shape(a=1.0 - rng.uniform(0.035, 0.06), c=6.0 * 0.7)


class Draws:
    """A candidate's runs, drawn once: the pruned and unpruned replays see the same ones."""

    def __init__(self, rng: random.Random, shape: Shape, key: str, jitter: float) -> None:
        self.rng, self.shape, self.key, self.jitter = rng, shape, key, jitter
        self.runs: list[Run] = []

    def __call__(self, i: int) -> Run:
        while len(self.runs) <= i:
            self.runs.append(run(self.rng, self.shape, self.key, self.jitter))
        return self.runs[i]


@dataclass
class Totals:
    kept: int = 0
    kept_pruned: int = 0
    discarded: int = 0
    budget_discarded: float = 0.0  # without pruning, in full runs
    budget_discarded_pruned: float = 0.0  # with pruning
    by_kind: Counter = field(default_factory=Counter)  # kind -> [without, with] budget
    by_kind_pruned: Counter = field(default_factory=Counter)
    pruned: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)


def judged(
    judge: NoiseAwareJudge,
    incumbent: list[float],
    draw: Callable[[int], Run],
    watch: Callable[[], Pruner] | None,
) -> tuple[str, float]:
    """(status, budget spent in runs) as the loop would have it, pruned or not."""
    samples: list[float] = []
    spent = 0.0
    while True:
        r = draw(len(samples))
        if watch is not None:
            pruner = watch()
            stop = next((p.progress for p in r.curve if pruner.watch(p)), None)
            if stop is not None:
                return "pruned", spent + stop
        spent += 1.0
        if not math.isfinite(r.final):
            return "crash", spent
        samples.append(r.final)
        verdict = judge.decide(samples, incumbent, "minimize")
        if verdict.decision != "more" or len(samples) >= judge.max_samples:
            return verdict.decision if verdict.decision == "keep" else "discard", spent


def simulate(seeds: int, candidates: int, key: str, jitter: float, late: bool) -> Totals:
    judge, totals = NoiseAwareJudge(), Totals()
    for seed in range(seeds):
        rng = random.Random(seed)
        base = [run(rng, Shape(), key, jitter) for _ in range(3)]
        incumbent = [r.final for r in base]

        pruner = partial(
            Pruner,
            base[0].curve,
            metric_name=METRIC,
            goal="minimize",
            noise=noise(incumbent),
            min_progress=MIN_PROGRESS,
        )
        for _ in range(candidates):
            kind, shape = candidate_shape(rng, late)
            draw = Draws(random.Random(rng.random()), shape, key, jitter)
            plain, spent = judged(judge, incumbent, draw, None)
            status, spent_pruned = judged(judge, incumbent, draw, pruner)
            totals.kinds[kind] += 1
            if plain == "keep":
                totals.kept += 1
                totals.kept_pruned += status == "pruned"
            else:
                totals.discarded += 1
                totals.budget_discarded += spent
                totals.budget_discarded_pruned += spent_pruned
                totals.by_kind[kind] += spent
                totals.by_kind_pruned[kind] += spent_pruned
            if status == "pruned":
                totals.pruned[(kind, plain)] += 1
    return totals


def report(label: str, totals: Totals) -> None:
    saved = 1 - totals.budget_discarded_pruned / max(totals.budget_discarded, 1e-9)
    wrong = totals.kept_pruned / max(1, totals.kept)
    print(
        f"| {label} | {totals.discarded} | {saved:.0%} | {totals.kept} "
        f"| {totals.kept_pruned} ({wrong:.1%}) |"
    )
    return None


def synthetic(seeds: int, candidates: int) -> None:
    print(f"{seeds} seeds x {candidates} candidates; min_progress {MIN_PROGRESS}, patience 2\n")
    print(
        "| progress key | late bloomers | discarded or crashed | budget saved on those "
        "| kept | kept, pruned |"
    )
    print("|---|---|---|---|---|---|")
    details = []
    for label, key, jitter in (
        ("train_loss (jitter 0.03; not the metric)", "train_loss", 0.03),
        ("val_loss (jitter 0.005; the metric)", METRIC, 0.005),
    ):
        for late in (True, False):
            totals = simulate(seeds, candidates, key, jitter, late)
            report(f"{label} | {'10 %' if late else 'none'}", totals)
            details.append((f"{label.split(' ')[0]}, {'with' if late else 'without'} late", totals))
    for label, totals in details:
        pruned = ", ".join(
            f"{kind} that would {plain}: {n}" for (kind, plain), n in sorted(totals.pruned.items())
        )
        saved = ", ".join(
            f"{kind} {1 - totals.by_kind_pruned[kind] / spent:.0%} of {spent:.0f} runs"
            for kind, spent in sorted(totals.by_kind.items())
        )
        print(f"\n{label}: pruned {pruned}\n  budget saved on discards by kind: {saved}")


# --- real runs ---------------------------------------------------------------------------


def _curve(log_dir: str, metric: str) -> list[ProgressPoint]:
    path = Path(log_dir) / "run.log"
    if not path.is_file():
        return []
    parser = MetricParser(metric)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parser.feed(line)
    return parser.result().progress


def from_ledger(study_dir: Path) -> None:
    from ratchet.store.ledger import Ledger
    from ratchet.study import load_study

    study = load_study(study_dir)
    ledger = Ledger(study.root / ".ratchet" / "ledger.sqlite")
    try:
        experiments = ledger.experiments()
    finally:
        ledger.close()
    by_commit = {e.commit: e for e in experiments if e.status in ("baseline", "keep")}
    name, goal = study.metric.name, study.metric.goal
    spent = saved = 0.0
    kept = kept_pruned = 0
    print("| id | status | metric | pruned at | reason |")
    print("|---|---|---|---|---|")
    for e in experiments:
        parent = by_commit.get(e.parent)
        if e.status not in ("keep", "discard") or parent is None:
            continue
        reference, curve = _curve(parent.log_dir, name), _curve(e.log_dir, name)
        pruner = Pruner(
            reference, metric_name=name, goal=goal, noise=noise(parent.samples),
            min_progress=study.prune.min_progress, key=study.prune.key,
        )  # fmt: skip
        stop = next(((p.progress, why) for p in curve if (why := pruner.watch(p))), None)
        at = f"{stop[0]:.0%}" if stop else "-"
        print(f"| {e.id} | {e.status} | {e.metric} | {at} | {stop[1] if stop else ''} |")
        if e.status == "keep":
            kept += 1
            kept_pruned += stop is not None
        else:
            spent += 1.0
            saved += 1.0 - stop[0] if stop else 0.0
    print(
        f"\nfirst runs only: saved {saved / max(spent, 1e-9):.0%} of {spent:.0f} discarded runs'"
        f" budget; pruned {kept_pruned} of {kept} kept"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--from-ledger", type=Path, metavar="STUDY_DIR")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.from_ledger:
        from_ledger(args.from_ledger)
    else:
        synthetic(args.seeds, args.candidates)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
