"""Ray's added cost per experiment over the local executor (goal: at most 50 ms).

One tiny study (``cat value.txt`` prints the metric; ``--evaluate`` adds a
sealed ``python`` evaluate phase), measured N times by the local executor and
N times by the Ray executor on a two-node Ray cluster started on this machine
(a head that runs nothing, two 1-CPU nodes, all on 127.0.0.1). Each sample's
wall time is taken around ``executor.measure``; the first few of each are
warm-up (Ray starts its worker processes then) and left out. With
``--changing`` every sample is a new candidate (a new file set to hash, put
in the object store and write on the node), else the same commit each time.

    python benchmarks/ray_overhead.py [--samples 40] [--changing] [--evaluate]
                                      [--sandbox none|process|bwrap] [--sleep S]

``measure_overhead(...)`` returns the figures, for ``benchmarks/parallel.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when Ray is imported
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from ratchet import load_study  # noqa: E402
from ratchet.execute.phases import Candidate, Executor  # noqa: E402

TOML = """\
[study]
name = "tiny"
[files]
editable = ["value.txt"]
protected = ["score.py"]
[run]
command = "{sleep}cat value.txt{copy}"
budget = 10
grace = 1
sandbox = "{sandbox}"
{evaluate}
[metric]
name = "score"
"""
EVALUATE = """\
[evaluate]
command = "python score.py"
budget = 10
inputs = ["out.txt"]
"""
WARMUP = 3


def _study(directory: Path, evaluate: bool, sandbox: str = "process", sleep: float = 0) -> Path:
    directory.mkdir()
    files = {
        "ratchet.toml": TOML.format(
            copy=" > out.txt" if evaluate else "",
            evaluate=EVALUATE if evaluate else "",
            sandbox=sandbox,
            sleep=f"sleep {sleep:g}; " if sleep else "",
        ),
        "program.md": "x\n",
        "value.txt": "score: 5\n",
        "score.py": "print(open('out.txt').read().strip())\n",
    }
    for name, text in files.items():
        (directory / name).write_text(text)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "study")
    checkout = directory.parent / "checkout"  # candidates run in a worktree, as in a real run
    git("worktree", "add", "-q", "--detach", str(checkout))
    return checkout


def _timed(executor, root: Path, logs: Path, samples: int, changing: bool) -> list[float]:
    times = []
    for i in range(samples + WARMUP):
        commit = "" if changing else "fixed"
        if changing:
            (root / "value.txt").write_text(f"score: {i}\n")
        candidate = Candidate(root, logs / str(i), seed=i, commit=commit, exp_id=i)
        started = time.perf_counter()
        m = executor.measure(candidate)
        took = time.perf_counter() - started
        assert m.status == "ok", m.reason
        if i >= WARMUP:
            times.append(took)
    return times


def measure_overhead(
    samples: int = 40,
    changing: bool = False,
    evaluate: bool = False,
    sandbox: str = "process",
    sleep: float = 0,
) -> dict:
    """Median seconds per sample, local and on Ray, and Ray's difference."""
    import ray
    from ray.cluster_utils import Cluster

    from ratchet.execute.ray_backend import RayExecutor

    with tempfile.TemporaryDirectory() as tmp:
        root = _study(Path(tmp) / "study", evaluate, sandbox, sleep)
        study = load_study(Path(tmp) / "study")
        pinned = {name: (root / name).read_bytes() for name in study.protected_files()}
        local = _timed(Executor(study, pinned=pinned), root, Path(tmp) / "l", samples, changing)
        cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
        )
        try:
            cluster.add_node(num_cpus=1)
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            assert cluster.gcs_address.startswith("127."), cluster.gcs_address
            ray.init(address=cluster.address, log_to_driver=False)
            executor = RayExecutor(study, pinned=pinned)
            remote = _timed(executor, root, Path(tmp) / "r", samples, changing)
        finally:
            ray.shutdown()
            cluster.shutdown()
    return {
        "local_s": statistics.median(local),
        "ray_s": statistics.median(remote),
        "added_s": statistics.median(remote) - statistics.median(local),
        "ray_p90_s": sorted(remote)[int(0.9 * (len(remote) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--changing", action="store_true", help="a new file set every sample")
    parser.add_argument("--evaluate", action="store_true", help="add a sealed evaluate phase")
    parser.add_argument("--sandbox", default="process", choices=["none", "process", "bwrap"])
    parser.add_argument("--sleep", type=float, default=0, help="the run phase sleeps first")
    args = parser.parse_args()
    figures = measure_overhead(
        args.samples, args.changing, args.evaluate, args.sandbox, args.sleep
    )
    what = "new candidate each sample" if args.changing else "same candidate"
    print(
        f"{args.samples} samples, {what}, evaluate phase: {'yes' if args.evaluate else 'no'},"
        f" sandbox {args.sandbox}, run phase sleeps {args.sleep:g} s"
    )
    print(f"local executor: median {figures['local_s'] * 1000:7.1f} ms per sample")
    print(
        f"Ray executor:   median {figures['ray_s'] * 1000:7.1f} ms per sample"
        f" (p90 {figures['ray_p90_s'] * 1000:.1f} ms)"
    )
    print(f"Ray's added cost: {figures['added_s'] * 1000:+.1f} ms per sample (goal: at most 50)")


if __name__ == "__main__":
    main()
