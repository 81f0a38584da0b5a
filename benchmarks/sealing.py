"""What sealing the evaluate phase costs per experiment, on the sine study's files.

Two figures, each a median over many repetitions so that a loaded machine
moves them little:

- sealing: ``sealed_dir`` with the sine study's pinned files (ratchet.toml,
  program.md, evaluate.py) and its declared input coefficients.json —
  the fresh directory, the copies, the report socket, the cleanup — plus
  reading the channel afterwards. This is what Ratchet itself adds to each
  evaluate phase.
- the harness's import: what ``from ratchet.evaluation import report``
  costs a fresh interpreter (``-X importtime``, after ``import json``), i.e.
  what an evaluator that reports through the harness pays at every run.

And what the candidate proxy costs: starting a worker (``load_candidate``)
and one call (``solver.add(i, 1)``), medians.

    python benchmarks/sealing.py [--repeat 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ratchet.execute.sealed import read_reports, receive, sealed_dir

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sine"


def sealing_ms(repeat: int) -> list[float]:
    """Milliseconds per sealed directory, built from the sine study's files."""
    pinned = {n: (EXAMPLE / n).read_bytes() for n in ("ratchet.toml", "program.md", "evaluate.py")}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        (source / "coefficients.json").write_text('{"coefficients": [0.0, 1.0, 0.0, -0.16]}')
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            with sealed_dir(pinned, ["coefficients.json"], source) as sealed:
                read_reports(receive(sealed.report_r))
            times.append((time.perf_counter() - started) * 1000)
    return times


def import_ms(repeat: int) -> list[float]:
    """Milliseconds a fresh interpreter spends importing ``ratchet.evaluation`` (-X importtime).

    ``json`` is imported first: the sine evaluator imports it anyway.
    """
    code = "import json; from ratchet.evaluation import report"
    env = dict(os.environ, PYTHONSAFEPATH="1", PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))  # warm caches
    times = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        line = [ln for ln in done.stderr.splitlines() if ln.endswith("| ratchet.evaluation")][0]
        times.append(int(line.split("|")[1]) / 1000)
    return times


PROXY = """\
import statistics, sys, time
from ratchet.evaluation import load_candidate
starts, calls = [], []
for _ in range(5):
    started = time.perf_counter()
    solver = load_candidate("solver.py", timeout=10)
    starts.append(time.perf_counter() - started)
    for i in range({calls}):
        started = time.perf_counter()
        solver.add(i, 1)
        calls.append(time.perf_counter() - started)
    solver.close()
print(statistics.median(starts) * 1000, statistics.median(calls) * 1000)
"""


def proxy_ms(calls: int) -> tuple[float, float]:
    """Median milliseconds to start a candidate worker, and per call through the proxy."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "solver.py").write_text("def add(a, b):\n    return a + b\n")
        done = subprocess.run(
            [sys.executable, "-c", PROXY.format(calls=calls)],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
    start, call = done.stdout.split()
    return float(start), float(call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    seal = sealing_ms(args.repeat)
    runs = max(20, args.repeat // 10)
    imports = import_ms(runs)
    print(
        f"sealing the evaluate phase, ms:   median {statistics.median(seal):.2f}"
        f"  p90 {sorted(seal)[int(0.9 * (len(seal) - 1))]:.2f}  ({len(seal)} runs)"
    )
    print(
        f"importing ratchet.evaluation, ms: median {statistics.median(imports):.2f}"
        f"  ({runs} fresh interpreters)"
    )
    start, call = proxy_ms(args.repeat)
    print(f"load_candidate (worker start), ms: median {start:.1f}  (5 workers)")
    print(f"one call through the proxy, ms:    median {call:.3f}  ({5 * args.repeat} calls)")
    print("target: sealing + harness import <= 5 ms per experiment")


if __name__ == "__main__":
    main()
