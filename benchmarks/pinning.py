"""What pinning a phase to its worker's CPUs costs: ``run_command`` of ``true``, with and without.

A pinned phase starts through the runner's gate (one more ``/bin/sh`` exec,
then ``sched_setaffinity`` on the held child) instead of a bare
``posix_spawn``. This prints the median wall time of a whole ``run_command``
(fork of the shepherd, spawn, wait, log) both ways, interleaved so that the
machine's drift cancels, at sandbox level none.

    python benchmarks/pinning.py [--runs 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from ratchet.execute import RunSpec, run_command


def once(work: Path, cpus: tuple[int, ...]) -> float:
    """Seconds for one ``run_command`` of ``true``."""
    spec = RunSpec("true", work, dict(os.environ), 10.0, 0.5, work / "run.log", cpus=cpus)
    start = time.perf_counter()
    run_command(spec)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    runs = parser.parse_args().runs
    work = Path(tempfile.mkdtemp(prefix="ratchet-pinning-"))
    cpu = (max(os.sched_getaffinity(0)),)
    for _ in range(5):  # warm up: page cache, the shell
        once(work, ())
        once(work, cpu)
    free, pinned = [], []
    for _ in range(runs):
        free.append(once(work, ()))
        pinned.append(once(work, cpu))
    a, b = statistics.median(free) * 1000, statistics.median(pinned) * 1000
    print(f"runs: {runs} each, interleaved; sandbox level none")
    print(f"unpinned  median {a:7.2f} ms per phase")
    print(f"pinned    median {b:7.2f} ms per phase (to CPU {cpu[0]})")
    print(f"pinning costs {b - a:+.2f} ms per phase")


if __name__ == "__main__":
    main()
