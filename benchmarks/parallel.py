"""Experiments in flight (``--workers N``): throughput against the ideal N×.

Part 1, sleep-bound: a study whose run phase sleeps 2 s and prints a metric that
is noise only (a random number), run by the real loop (git, the ledger, the
runner, one worker process per local worker) with N = 1, 2, 4, 8 workers and
``--per-worker`` experiments per worker. Throughput is the experiments finished
after the baseline divided by the time from the baseline's end to the last
experiment's end, per hour; the ideal is N × 3600 / sleep. Rebases (the
concurrent keep rule) are experiments too, and are counted and shown.

Part 2, the concurrent keep rule in practice: six files whose ``score:``
lines add up to the metric, and proposals that each lower one file (so every
one beats its parent) run by ``--rule-workers`` workers: how many keeps,
rebases ("rebase of #id") and conflicts (two changes to one file) it made.

Part 3, CPU-bound: sine-like experiments (examples/sine with ``--steps``
gradient steps, its evaluate phase included) at N = 1 and N = 2: the wall time
of the same number of experiments, and the ratio (about 0.5 on an idle machine
with two cores). The machine's load average is printed with it: other
processes on a shared machine take cores from the experiments.

    python benchmarks/parallel.py [--workers 1 2 4 8] [--per-worker 6] [--sleep 2]
                                  [--backend local] [--cpu-experiments 6] [--steps 60000]
                                  [--skip-cpu] [--rule-workers 4] [--sandbox process]

``--backend`` may be repeated; each backend gets its rows in the one table
(``[execute] backend`` of the study; ``ray`` runs on a two-node Ray cluster this
script starts on 127.0.0.1, where that backend is installed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ratchet import RunOptions, load_study, run_study
from ratchet.decide.judge import StrictJudge
from ratchet.errors import RatchetError
from ratchet.models import Experiment
from ratchet.observer import Observer
from ratchet.proposers import ReplayProposer

SLEEP_TOML = """\
[study]
name = "sleepy"
[files]
editable = ["value.txt"]
[run]
command = "sleep {sleep} && echo score: $(od -An -N2 -tu2 /dev/urandom)"
budget = 60
grace = 1
sandbox = "{sandbox}"
[metric]
name = "score"
[execute]
backend = "{backend}"
[proposer]
kind = "replay"
"""
SINE = Path(__file__).resolve().parent.parent / "examples" / "sine"


class Finishes(Observer):
    """When each experiment finished (hooks may come from worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at: list[tuple[float, Experiment]] = []

    def experiment_finished(self, experiment: Experiment) -> None:
        with self.lock:
            self.at.append((time.monotonic(), experiment))


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "add", "-A")
    _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "study")
    return root


def _replay(path: Path, edits: list[dict[str, str]]) -> Path:
    lines = [{"description": f"p{k}", "edits": e} for k, e in enumerate(edits)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@dataclass(frozen=True)
class Timed:
    experiments: int  # finished after the baseline
    seconds: float  # from the baseline's end to the last end
    kept: int
    rebases: int
    cpu_s: float  # CPU time of every process the run started (reaped children)


def _timed(root: Path, replay: Path, workers: int, count: int) -> Timed:
    """One run of ``count`` proposals with ``workers`` workers, timed."""
    finishes = Finishes()
    study = load_study(root)
    options = RunOptions(max_experiments=count, workers=workers)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_study(study, ReplayProposer(replay), StrictJudge(), options, finishes)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    times = [t for t, e in finishes.at if e.status != "baseline"]
    start = next(t for t, e in finishes.at if e.status == "baseline")
    exps = [e for _, e in finishes.at]
    return Timed(
        experiments=len(times),
        seconds=max(times) - start,
        kept=sum(e.status == "keep" for e in exps),
        rebases=sum(e.description.startswith("rebase of #") for e in exps),
        cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


def sleep_bound(args: argparse.Namespace, scratch: Path) -> None:
    print(f"sleep-bound: each experiment sleeps {args.sleep:g} s, metric = noise")
    print(f"{'backend':>8} {'N':>3} {'exps':>5} {'kept':>4} {'rebases':>7} {'seconds':>8}"
          f" {'exps/hour':>10} {'ideal':>8} {'of ideal':>8}")  # fmt: skip
    for backend in args.backend:
        for n in args.workers:
            root = scratch / f"sleep-{backend}-{n}"
            toml = SLEEP_TOML.format(sleep=args.sleep, sandbox=args.sandbox, backend=backend)
            _repo(root, {"ratchet.toml": toml, "program.md": "x", "value.txt": "# 0\n"})
            count = n * args.per_worker
            replay = _replay(scratch / f"p-{backend}-{n}.jsonl",
                             [{"value.txt": f"# {k + 1}\n"} for k in range(count)])  # fmt: skip
            try:
                run = _timed(root, replay, n, count)
            except RatchetError as exc:
                print(f"{backend:>8} {n:>3}  not measured: {exc}")
                continue
            rate = run.experiments / run.seconds * 3600
            ideal = n * 3600 / args.sleep
            print(f"{backend:>8} {n:>3} {run.experiments:>5} {run.kept:>4} {run.rebases:>7}"
                  f" {run.seconds:>8.2f}"
                  f" {rate:>10.0f} {ideal:>8.0f} {rate / ideal:>8.1%}")  # fmt: skip


RULE_TOML = """\
[study]
name = "rule"
[files]
editable = ["*.txt"]
[run]
command = "sleep 0.5 && cat *.txt | awk '{{ s += $2 }} END {{ print \\"score:\\", s }}'"
budget = 60
grace = 1
sandbox = "{sandbox}"
[metric]
name = "score"
[proposer]
kind = "replay"
"""


def keep_rule(args: argparse.Namespace, scratch: Path) -> None:
    names = [f"{c}.txt" for c in "abcdef"]
    root = _repo(scratch / "rule", {
        "ratchet.toml": RULE_TOML.format(sandbox=args.sandbox), "program.md": "x",
        **{name: "score: 100\n" for name in names},
    })  # fmt: skip
    count = 6 * args.rule_workers
    edits = [{names[(k * 5) % 6]: f"score: {99 - k}\n"} for k in range(count)]
    replay = _replay(scratch / "rule.jsonl", edits)
    finishes = Finishes()
    study = load_study(root)
    options = RunOptions(max_experiments=count, workers=args.rule_workers)
    run_study(study, ReplayProposer(replay), StrictJudge(), options, finishes)
    exps = [e for _, e in finishes.at]
    conflicts = sum("conflicts in" in e.reason for e in exps)
    rebased = sum(e.description.startswith("rebase of #") for e in exps)
    kept = [e for e in exps if e.status == "keep"]
    print(f"\nkeep rule: {count} proposals that each beat their parent, {args.rule_workers}"
          f" workers: {len(kept)} kept ({sum(e.description.startswith('rebase') for e in kept)}"
          f" of them rebases), {rebased} rebases, {conflicts} conflicts;"
          f" score 600 -> {kept[-1].metric if kept else 600:g}")  # fmt: skip


def cpu_bound(args: argparse.Namespace, scratch: Path) -> None:
    print(f"\nCPU-bound: sine-like experiments ({args.steps} steps each, evaluate phase"
          f" included), {args.cpu_experiments} per run, on {os.cpu_count()} cores")  # fmt: skip
    walls = {}
    for n in (1, 2):
        root = scratch / f"sine-{n}"
        shutil.copytree(SINE, root)
        train = root / "train.py"
        text = train.read_text().replace("STEPS = 200 ", f"STEPS = {args.steps} ", 1)
        train.write_text(text)
        config = root / "ratchet.toml"
        budgets = config.read_text().replace("budget = 10\ngrace", "budget = 600\ngrace", 1)
        config.write_text(budgets)
        _git(root, "init", "-q", "-b", "main")
        _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "add", "-A")
        _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "study")
        rates = [f"LEARNING_RATE = {0.03 + k * 1e-4:.4f} " for k in range(args.cpu_experiments)]
        edits = [{"train.py": text.replace("LEARNING_RATE = 0.03 ", r, 1)} for r in rates]
        replay = _replay(scratch / f"sine-{n}.jsonl", edits)
        load = os.getloadavg()[0]
        run = _timed(root, replay, n, args.cpu_experiments)
        walls[n] = run.seconds
        print(f"  N = {n}: {run.experiments} experiments in {run.seconds:.2f} s,"
              f" CPU {run.cpu_s:.2f} s (load average before: {load:.1f})")  # fmt: skip
    print(f"  wall time N=2 / N=1: {walls[2] / walls[1]:.2f} (ideal on two idle cores: 0.50)")


@contextlib.contextmanager
def _ray_cluster(wanted: bool, args: argparse.Namespace) -> Iterator[None]:
    """A two-node Ray cluster on 127.0.0.1 for the ``ray`` rows (``RAY_ADDRESS`` names it):
    a head that runs nothing and two nodes with CPUs for half the largest N each."""
    if not wanted:
        yield
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when Ray is imported
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    per_node = max(1, (max(args.workers) + 1) // 2)
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=per_node)
        cluster.add_node(num_cpus=per_node)
        cluster.wait_for_nodes()
        assert cluster.gcs_address.startswith("127."), cluster.gcs_address
        os.environ["RAY_ADDRESS"] = cluster.address
        yield
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--per-worker", type=int, default=6)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--backend", action="append", choices=("local", "ray"))
    parser.add_argument("--cpu-experiments", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60000)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--rule-workers", type=int, default=4)
    parser.add_argument("--sandbox", default="process")
    args = parser.parse_args()
    args.backend = args.backend or ["local"]
    with tempfile.TemporaryDirectory() as tmp, _ray_cluster("ray" in args.backend, args):
        scratch = Path(tmp)
        sleep_bound(args, scratch)
        keep_rule(args, scratch)
        if not args.skip_cpu:
            cpu_bound(args, scratch)


if __name__ == "__main__":
    main()
