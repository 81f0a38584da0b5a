"""Search policies and offline proposers, compared on three studies, through the real loop.

(a) ``examples/sine``: experiments needed to halve the baseline mse, ``sweep``
    vs ``mutate`` (greedy policy; goal: sweep needs at most half as many,
    median over seeds).
(b) ``examples/deceptive``: the fraction of seeds whose best loss reaches the
    deep basin (loss < 0.39; the shallow basin bottoms out at 0.4) within 60
    experiments, ``greedy`` vs ``tree`` vs ``islands`` (mutate proposer;
    goal: tree or islands at least 7 of 10, greedy at most 3).
(c) ``examples/circle_packing`` (n = 26, sum of radii, published bests about
    2.635): the best reached in 100 experiments by mutate and sweep (greedy)
    and by mutate under each policy, median over seeds.

Mode: every run is ``run_study`` itself — the real proposers, policies, judge
(the study's ``[decision]``), ledger, git repository, worktree, verify and
lint stages — on a fresh git copy of the example, one per run. Only the
executor differs: ``InProcessExecutor`` runs the study's ``python X.py``
phases inside this process (``runpy``, in the candidate's worktree, with
``RATCHET_SEED``/``RATCHET_BUDGET``/``RATCHET_DEADLINE`` set and the budget
enforced by an interval timer) instead of as sandboxed subprocesses, so a
candidate costs milliseconds rather than an interpreter start-up. Results are
cached by the candidate's files and seed (the three studies are deterministic),
so a candidate two runs share is measured once.

Seeds: the loop seeds each proposal from the history's length (a run is
reproducible) and the policy from the study, tag and history length; a seed
here is the tag (``s<seed>``) plus ``Seeded``, which offsets
``Context.seed`` before the proposer sees it. Nothing else changes.

    python benchmarks/search.py [--seeds 10] [--part sine|deceptive|circles|all]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import runpy
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ratchet import RunOptions, load_study, run_study
from ratchet.decide.judge import make_judge
from ratchet.execute.base import Watch
from ratchet.execute.phases import REJECT_EXIT, Candidate, Measurement
from ratchet.metrics import parse_output
from ratchet.models import Context, Experiment, Proposal
from ratchet.proposers import make_proposer
from ratchet.proposers.base import Proposer
from ratchet.store.ledger import Ledger
from ratchet.study import Study

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEEP = 0.39  # below the shallow basin's best (0.4): only the deep basin gets there
PUBLISHED = 2.635  # the best known sums of radii for 26 circles are about 2.635


class _Timeout(Exception):
    """The phase ran past its budget (raised by the interval timer)."""


@dataclass
class InProcessExecutor:
    """The executor seam (``execute.base.BaseExecutor``), running ``python X.py`` phases in
    this process: the candidate's worktree as the current directory, stdout captured and
    parsed by Ratchet's own metric parser, exit status 3 of the evaluate phase a rejection,
    as with the process executor. ``cache`` is shared between runs of one study."""

    study: Study
    cache: dict[str, Measurement]
    budget: float = 0.0
    runs: int = 0

    def __post_init__(self) -> None:
        self.budget = self.budget or self.study.run.budget

    def smoke(self, candidate: Candidate) -> Measurement | None:
        return None

    def confirm(self, candidate: Candidate) -> Measurement:
        raise NotImplementedError("the benchmark's studies have no [confirm]")

    def measure(self, candidate: Candidate, watch: Watch | None = None) -> Measurement:
        root = candidate.study_dir
        files = {p: (root / p).read_text() for p in self.study.editable_files(root)}
        key = hashlib.sha256(repr((sorted(files.items()), candidate.seed)).encode()).hexdigest()
        if key not in self.cache:
            self.runs += 1
            self.cache[key] = self._measure(candidate)
        return self.cache[key]

    def _measure(self, candidate: Candidate) -> Measurement:
        started = time.monotonic()
        phases = [("run", self.study.run.command, self.budget, self.study.run.grace)]
        if self.study.evaluate is not None:
            spec = self.study.evaluate
            phases.append(("evaluate", spec.command, spec.budget, spec.grace))
        output = ""
        for name, command, budget, grace in phases:
            if command is None:
                continue
            status, output, reason = _phase(command, candidate, budget, grace)
            if status != "ok":
                return Measurement(
                    "rejected" if status == "rejected" else status,  # type: ignore[arg-type]
                    reason=f"{name} phase: {reason}",
                    duration_s=time.monotonic() - started,
                )
        parsed = parse_output(output, self.study.metric.name)
        if parsed.metric is None:
            return Measurement("crash", reason=parsed.problem or "no metric",
                               duration_s=time.monotonic() - started)  # fmt: skip
        return Measurement("ok", metric=parsed.metric, extras=parsed.extras,
                           duration_s=time.monotonic() - started)  # fmt: skip


def _phase(command: str, candidate: Candidate, budget: float, grace: float) -> tuple[str, str, str]:
    """Run ``python SCRIPT [ARGS]`` in-process: (status, stdout, reason)."""
    argv = shlex.split(command)
    if len(argv) < 2 or argv[0] not in ("python", "python3") or not argv[1].endswith(".py"):
        raise NotImplementedError(f"the in-process executor runs `python X.py` only: {command}")
    out, err = io.StringIO(), io.StringIO()
    env = {"RATCHET_SEED": str(candidate.seed), "RATCHET_BUDGET": str(budget),
           "RATCHET_DEADLINE": str(time.time() + budget)}  # fmt: skip
    with _inside(candidate.study_dir, env, argv[1:]):
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, budget + grace)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                runpy.run_path(argv[1], run_name="__main__")
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if code:
                last = (err.getvalue().strip().splitlines() or [""])[-1]
                status = "rejected" if code == REJECT_EXIT else "crash"
                return status, out.getvalue(), f"exited with code {code}: {last}"
        except _Timeout:
            return "timeout", out.getvalue(), f"ran past its {budget:g} s budget"
        except Exception:
            return "crash", out.getvalue(), traceback.format_exc().strip().splitlines()[-1]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return "ok", out.getvalue(), ""


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


@contextlib.contextmanager
def _inside(directory: Path, env: dict[str, str], argv: list[str]) -> Iterator[None]:
    """The current directory, environment and ``sys.argv`` of a phase, restored after."""
    saved = os.getcwd(), dict(os.environ), sys.argv
    os.chdir(directory)
    os.environ.update(env)
    sys.argv = argv
    try:
        yield
    finally:
        os.chdir(saved[0])
        os.environ.clear()
        os.environ.update(saved[1])
        sys.argv = saved[2]


@dataclass
class Seeded:
    """A proposer whose ``Context.seed`` is offset by the benchmark's seed (see the notes)."""

    inner: Proposer
    seed: int

    @property
    def name(self) -> str:
        return self.inner.name

    def propose(self, context: Context) -> Proposal:
        return self.inner.propose(replace(context, seed=context.seed + 1009 * self.seed))


def run_once(
    example: str, proposer: str, policy: str, seed: int, n: int, cache: dict[str, Measurement]
) -> tuple[list[Experiment], int]:
    """One ``run_study`` of ``n`` experiments on a fresh git copy of ``examples/<example>``:
    the ledger's rows (baseline first) and how many candidates were measured (not cached)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"ratchet-bench-{example}-"))
    try:
        root = scratch / example
        shutil.copytree(EXAMPLES / example, root,
                        ignore=shutil.ignore_patterns(".ratchet", "__pycache__"))  # fmt: skip
        for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                     ["-c", "user.name=bench", "-c", "user.email=bench@localhost",
                      "commit", "-q", "-m", "study"]):  # fmt: skip
            subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
        study = load_study(root)
        study = study.model_copy(
            update={"search": study.search.model_copy(update={"policy": policy})}
        )
        executor = InProcessExecutor(study, cache)
        run_study(
            study, Seeded(make_proposer(study, proposer), seed), make_judge(study.decision),
            RunOptions(tag=f"s{seed}", max_experiments=n), executor=executor,
        )  # fmt: skip
        ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
        try:
            return ledger.experiments(), executor.runs
        finally:
            ledger.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def metrics_of(exps: list[Experiment]) -> list[float | None]:
    """Each row's metric, baseline first; only measured candidates count as values."""
    return [e.metric if e.status in ("baseline", "keep", "discard") else None for e in exps]


def best_so_far(metrics: list[float | None], k: int, sign: int) -> float:
    """The best metric among the baseline and the first ``k`` experiments."""
    return sign * min(sign * m for m in metrics[: k + 1] if m is not None)


def first_reaching(metrics: list[float | None], target: float) -> int | None:
    """How many experiments (after the baseline) until a metric is at or below ``target``."""
    for k, metric in enumerate(metrics[1:], 1):
        if metric is not None and metric <= target:
            return k
    return None


def _runs(
    example: str, proposer: str, policy: str, seeds: int, n: int, cache: dict[str, Measurement]
) -> tuple[list[list[float | None]], int]:
    runs, measured = [], 0
    for seed in range(seeds):
        exps, fresh = run_once(example, proposer, policy, seed, n, cache)
        runs.append(metrics_of(exps))
        measured += fresh
    return runs, measured


def sine(seeds: int, cap: int, fraction: float = 0.5) -> None:
    """(a) sweep vs mutate on examples/sine: experiments to bring the mse to ``fraction``
    of the baseline's (a half by default)."""
    cache: dict[str, Measurement] = {}
    rows = [("mutate", "mutate", "greedy"), ("sweep", "sweep", "greedy"),
            ("mutate+tree", "mutate", "tree")]  # fmt: skip
    print(f"(a) examples/sine, greedy policy unless named, {seeds} seeds, {cap} experiments each")
    print(f"{'proposer':<12}{f'to x{fraction:g}: median':>18}  per seed (- = not within {cap})")
    needed: dict[str, list[float]] = {}
    baseline = 0.0
    for name, proposer, policy in rows:
        runs, _ = _runs("sine", proposer, policy, seeds, cap, cache)
        baseline = runs[0][0] or 0.0
        ks = [first_reaching(r, baseline * fraction) for r in runs]
        needed[name] = [k if k is not None else float("inf") for k in ks]
        shown = " ".join("-" if k is None else str(k) for k in ks)
        print(f"{name:<12}{statistics.median(needed[name]):>18}  {shown}")
    print(f"baseline mse {baseline:.4g}, target {baseline * fraction:.4g};"
          f" {len(cache)} distinct candidates measured")  # fmt: skip
    ratio = statistics.median(needed["sweep"]) / statistics.median(needed["mutate"])
    goal = "  (goal: at most 0.5)" if fraction == 0.5 else ""
    print(f"sweep / mutate (medians): {ratio:.2f}{goal}\n")


def deceptive(seeds: int, n: int) -> None:
    """(b) greedy vs tree vs islands on examples/deceptive: who reaches the deep basin."""
    cache: dict[str, Measurement] = {}
    ks = sorted({k for k in (10, 20, 40, n) if k <= n})
    print(f"(b) examples/deceptive, mutate proposer, {seeds} seeds, {n} experiments each")
    print(f"{'policy':<10}{'deep basin':>12}{'  first k per seed':<44}"
          + "".join(f"{f'best@{k}':>10}" for k in ks))  # fmt: skip
    for policy in ("greedy", "tree", "islands"):
        runs, _ = _runs("deceptive", "mutate", policy, seeds, n, cache)
        firsts = [first_reaching(r, DEEP) for r in runs]
        hits = sum(k is not None for k in firsts)
        shown = " ".join("-" if k is None else str(k) for k in firsts)
        bests = "".join(
            f"{statistics.median(best_so_far(r, k, 1) for r in runs):>10.3g}" for k in ks
        )
        print(f"{policy:<10}{f'{hits}/{seeds}':>12}  {shown:<42}{bests}")
    print(f"deep basin: loss < {DEEP} (shallow basin best 0.4, deep 0);"
          f" {len(cache)} distinct candidates measured")  # fmt: skip
    print("goal: tree or islands at least 7/10, greedy at most 3/10\n")


def circles(seeds: int, n: int) -> None:
    """(c) circle packing: the best sum of radii each offline proposer and policy reaches."""
    cache: dict[str, Measurement] = {}
    rows = [("mutate", "mutate", "greedy"), ("sweep", "sweep", "greedy"),
            ("mutate+tree", "mutate", "tree"), ("mutate+islands", "mutate", "islands")]  # fmt: skip
    ks = sorted({k for k in (10, 25, 50, n) if k <= n})
    print(f"(c) examples/circle_packing (n = 26, sum of radii, maximize), {seeds} seeds,"
          f" {n} experiments each")  # fmt: skip
    print(f"{'run':<16}" + "".join(f"{f'best@{k}':>10}" for k in ks)
          + f"{'best seed':>11}{'crashed':>9}  per seed")  # fmt: skip
    baseline = 0.0
    for name, proposer, policy in rows:
        started = time.monotonic()
        runs, _ = _runs("circle_packing", proposer, policy, seeds, n, cache)
        baseline = runs[0][0] or 0.0
        medians = "".join(
            f"{statistics.median(best_so_far(r, k, -1) for r in runs):>10.4f}" for k in ks
        )
        finals = [best_so_far(r, n, -1) for r in runs]
        failed = statistics.median(sum(m is None for m in r[1:]) for r in runs)
        shown = " ".join(f"{v:.3f}" for v in finals)
        print(f"{name:<16}{medians}{max(finals):>11.4f}{failed:>9g}  {shown}"
              f"  ({time.monotonic() - started:.0f} s)")  # fmt: skip
    print(f"baseline {baseline:.4f}; published bests about {PUBLISHED}; 'crashed': median count"
          f" of experiments per run with no metric; {len(cache)} distinct candidates measured\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--circle-seeds", type=int, help="seeds for (c) (default: --seeds)")
    parser.add_argument("--part", choices=("sine", "deceptive", "circles", "all"), default="all")
    parser.add_argument("--sine-cap", type=int, default=30, help="experiments per sine run")
    parser.add_argument("--sine-target", type=float, default=0.5,
                        help="fraction of the baseline mse to reach")  # fmt: skip
    parser.add_argument("--experiments", type=int, default=60, help="per deceptive run")
    parser.add_argument("--circle-experiments", type=int, default=100, help="per packing run")
    args = parser.parse_args()
    started = time.monotonic()
    if args.part in ("sine", "all"):
        sine(args.seeds, args.sine_cap, args.sine_target)
    if args.part in ("deceptive", "all"):
        deceptive(args.seeds, args.experiments)
    if args.part in ("circles", "all"):
        circles(args.circle_seeds or args.seeds, args.circle_experiments)
    print(f"wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
