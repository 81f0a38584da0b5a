"""Search policies and offline proposers, compared on two small studies.

(a) ``examples/sine``: experiments needed to halve the baseline mse, ``sweep``
    vs ``mutate`` (greedy policy; goal: sweep needs at most half as many,
    median over seeds). A run stops when it halves the baseline.
(b) ``examples/deceptive``: the fraction of seeds whose best loss reaches the
    deep basin (loss < 0.39; the shallow basin bottoms out at 0.4) within 60
    experiments, ``greedy`` vs ``tree`` vs ``islands`` (mutate proposer;
    goal: tree or islands at least 7 of 10, greedy at most 3).

(b) also prints the median best-so-far after k experiments.

Mode: a simulation of the loop (``run_study`` takes a policy now, but the
simulation skips git, the ledger and the sandbox, so many seeds run in
minutes; ``tests/test_search_wiring.py`` checks the wired loop). It uses the
real policies and
proposers, and runs every candidate with the study's own ``[run]`` and
``[evaluate]`` commands (subprocesses in a scratch copy of the study
directory, ``RATCHET_SEED=0``, ``RATCHET_BUDGET``/``RATCHET_DEADLINE`` set),
reading the metric with ``ratchet.metrics.parse_output``. Each experiment
gets an ``Experiment`` row with ``parent_id`` and ``island`` in its meta, as
the ledger will record them. The keep rule is the studies' own ``strict``
rule, against ``Choice.incumbent``; a candidate whose files equal an earlier
experiment's is ``rejected`` without running, as the loop's dedupe does.
Left out: git, the ledger, the sandbox and the lint stage, none of which
changes what is proposed or kept. Results are cached by file content (both
studies are deterministic for a fixed seed).

    python benchmarks/search.py [--seeds 10] [--part sine|deceptive|both]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ratchet.errors import ProposalError, ProposalsExhausted
from ratchet.metrics import parse_output
from ratchet.models import Context, Experiment
from ratchet.policies import GreedyPolicy, IslandsPolicy, Policy, TreePolicy
from ratchet.policies.base import better
from ratchet.proposers import MutateProposer, SweepProposer
from ratchet.proposers.base import Proposer
from ratchet.study import Study, load_study

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEEP = 0.39  # below the shallow basin's best (0.4): only the deep basin gets there


class Evaluator:
    """Runs a study's own commands on candidate files, in one scratch copy of the study."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.scratch = Path(tempfile.mkdtemp(prefix=f"ratchet-bench-{study.name}-"))
        shutil.copytree(study.root, self.scratch, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ratchet", "__pycache__"))  # fmt: skip
        self.cache: dict[str, float | None] = {}
        self.runs = 0

    def __call__(self, files: dict[str, str]) -> float | None:
        """The candidate's metric (None when a phase fails or prints none)."""
        key = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
        if key not in self.cache:
            self.cache[key] = self._measure(files)
        return self.cache[key]

    def _measure(self, files: dict[str, str]) -> float | None:
        self.runs += 1
        for path, text in files.items():
            (self.scratch / path).write_text(text)
        output = self._phase(self.study.run.command, self.study.run.budget)
        if output is not None and self.study.evaluate is not None:
            output = self._phase(self.study.evaluate.command, self.study.evaluate.budget)
        return None if output is None else parse_output(output, self.study.metric.name).metric

    def _phase(self, command: str, budget: float) -> str | None:
        env = {**os.environ, "RATCHET_SEED": "0", "RATCHET_BUDGET": str(budget),
               "RATCHET_DEADLINE": str(time.time() + budget)}  # fmt: skip
        try:
            done = subprocess.run(
                command.replace("python ", f"{sys.executable} ", 1), shell=True,
                cwd=self.scratch, env=env, capture_output=True, text=True, timeout=budget + 5,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None
        return done.stdout if done.returncode == 0 else None

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def simulate(
    study: Study,
    proposer: Proposer,
    policy: Policy,
    evaluate: Evaluator,
    n: int,
    seed: int,
    stop_at: float | None = None,
) -> list[float | None]:
    """One run of ``n`` experiments after the baseline (or until a metric reaches
    ``stop_at``); the metric of each, baseline first."""
    files = {1: {p: (study.root / p).read_text() for p in study.editable_files()}}
    history = [Experiment(1, "bench", None, "c1", "baseline", evaluate(files[1]))]
    seen = {repr(sorted(files[1].items()))}
    rng, goal = random.Random(seed), study.metric.goal
    for number in range(2, n + 2):
        choice = policy.choose(history, rng)
        assert choice is not None
        parent = choice.parent
        context = Context(
            study.name, "bench", "", files[parent.id], parent.commit or "", study.metric.name,
            goal, history=list(history), incumbent=parent, seed=seed,
        )  # fmt: skip
        meta: dict = {"parent_id": parent.id}
        if choice.island is not None:
            meta["island"] = choice.island
        try:
            proposal = proposer.propose(context)
        except ProposalsExhausted:
            break
        except ProposalError as exc:
            history.append(Experiment(number, "bench", parent.commit, None, "rejected",
                                      reason=str(exc), meta=meta))  # fmt: skip
            continue
        meta = {**proposal.meta, **meta}
        files[number] = {**files[parent.id], **proposal.edits}
        fingerprint = repr(sorted(files[number].items()))
        if fingerprint in seen:
            history.append(Experiment(number, "bench", parent.commit, None, "rejected", meta=meta))
            continue
        seen.add(fingerprint)
        metric = evaluate(files[number])
        reference = choice.incumbent.metric
        if metric is None:
            status = "crash"
        elif reference is None or better(metric, reference, goal):
            status = "keep"
        else:
            status = "discard"
        history.append(Experiment(number, "bench", parent.commit, f"c{number}", status, metric,
                                  description=proposal.description, meta=meta))  # fmt: skip
        if stop_at is not None and metric is not None and metric <= stop_at:
            break
    return [e.metric for e in history]


def best_so_far(metrics: list[float | None], k: int) -> float:
    """The best metric among the baseline and the first ``k`` experiments (minimize)."""
    values = [m for m in metrics[: k + 1] if m is not None]
    return min(values)


def median_best(runs: list[list[float | None]], k: int) -> float:
    """The median over seeds of the best metric after ``k`` experiments."""
    return statistics.median(best_so_far(r, k) for r in runs)


def first_reaching(metrics: list[float | None], target: float) -> int | None:
    """How many experiments (after the baseline) until a metric is at or below ``target``."""
    for k, metric in enumerate(metrics[1:], 1):
        if metric is not None and metric <= target:
            return k
    return None


def sine(seeds: int, cap: int, fraction: float = 0.5) -> None:
    """(a) sweep vs mutate on examples/sine: experiments to bring the mse to
    ``fraction`` of the baseline's (a half by default).

    Each run stops once it gets there (a candidate of this study may use its
    whole 10-second budget, and mutate's climb makes runs longer).
    """
    study = load_study(EXAMPLES / "sine")
    evaluate = Evaluator(study)
    mutate = partial(MutateProposer, study.proposer.max_changes, editable=study.editable)
    sweep = partial(SweepProposer, sampler="tpe", editable=study.editable)
    greedy, tree = GreedyPolicy, partial(TreePolicy, goal=study.metric.goal)
    rows: dict[str, tuple[Callable[[], Proposer], Callable[[], Policy]]] = {
        "mutate": (mutate, greedy),
        "sweep": (sweep, greedy),
        "mutate+tree": (mutate, tree),  # the tree policy on a smooth study, for comparison
    }
    files = {p: (study.root / p).read_text() for p in study.editable_files()}
    baseline = evaluate(files)
    assert baseline is not None
    target = baseline * fraction
    print(f"(a) examples/sine, greedy policy unless named, {seeds} seeds, up to {cap} each")
    print(f"{'proposer':<12}{f'to x{fraction:g}: median':>18}  per seed (- = not within {cap})")
    needed: dict[str, list[float]] = {}
    try:
        for name, (proposer, policy) in rows.items():
            runs = [
                simulate(study, proposer(), policy(), evaluate, cap, s, stop_at=target)
                for s in range(seeds)
            ]
            ks = [first_reaching(r, target) for r in runs]
            needed[name] = [k if k is not None else float("inf") for k in ks]
            shown = " ".join("-" if k is None else str(k) for k in ks)
            print(f"{name:<12}{statistics.median(needed[name]):>18}  {shown}")
    finally:
        evaluate.close()
    print(f"baseline mse {baseline:.4g}, target {target:.4g};"
          f" {evaluate.runs} distinct candidates run")  # fmt: skip
    ratio = statistics.median(needed["sweep"]) / statistics.median(needed["mutate"])
    goal = "  (goal: at most 0.5)" if fraction == 0.5 else ""
    print(f"sweep / mutate (medians): {ratio:.2f}{goal}\n")


def deceptive(seeds: int, n: int) -> None:
    """(b) greedy vs tree vs islands on examples/deceptive: who reaches the deep basin."""
    study = load_study(EXAMPLES / "deceptive")
    evaluate = Evaluator(study)
    goal = study.metric.goal
    policies: dict[str, Policy] = {
        "greedy": GreedyPolicy(),
        "tree": TreePolicy(goal=goal),
        "islands": IslandsPolicy(goal=goal),
    }
    ks = sorted({k for k in (10, 20, 40, n) if k <= n})
    print(f"(b) examples/deceptive, mutate proposer, {seeds} seeds, {n} experiments each")
    print(f"{'policy':<10}{'deep basin':>12}{'  first k per seed':<44}"
          + "".join(f"{f'best@{k}':>10}" for k in ks))  # fmt: skip
    try:
        for name, policy in policies.items():
            proposer = MutateProposer(study.proposer.max_changes, editable=study.editable)
            runs = [simulate(study, proposer, policy, evaluate, n, s) for s in range(seeds)]
            firsts = [first_reaching(r, DEEP) for r in runs]
            hits = sum(k is not None for k in firsts)
            shown = " ".join("-" if k is None else str(k) for k in firsts)
            bests = "".join(f"{median_best(runs, k):>10.3g}" for k in ks)
            print(f"{name:<10}{f'{hits}/{seeds}':>12}  {shown:<42}{bests}")
    finally:
        evaluate.close()
    print(f"deep basin: loss < {DEEP} (shallow basin best 0.4, deep 0);"
          f" {evaluate.runs} distinct candidates run")  # fmt: skip
    print("goal: tree or islands at least 7/10, greedy at most 3/10\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--part", choices=("sine", "deceptive", "both"), default="both")
    parser.add_argument("--sine-cap", type=int, default=30, help="experiments per sine run")
    parser.add_argument("--sine-target", type=float, default=0.5,
                        help="fraction of the baseline mse to reach")  # fmt: skip
    parser.add_argument("--experiments", type=int, default=60, help="per deceptive run")
    args = parser.parse_args()
    started = time.monotonic()
    if args.part in ("sine", "both"):
        sine(args.seeds, args.sine_cap, args.sine_target)
    if args.part in ("deceptive", "both"):
        deceptive(args.seeds, args.experiments)
    print(f"wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
