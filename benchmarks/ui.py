"""The dashboard's serving time over a ledger of 10,000 experiments (goal: ≤ 300 ms each).

Builds a study whose ledger holds N synthetic experiments written through the
real ``Ledger`` API (a baseline, then keeps, discards, crashes and prunes in
realistic proportions, each with a description, a stored patch and token
counts), starts a real ``ratchet ui`` on 127.0.0.1 and times, over HTTP, the
three requests a page load makes: the overview, the table's rows and the
chart's data. Prints the first request after the server is up (the server
decodes and serializes the finished rows once while it starts; the time it
takes to answer its first request is printed too), the median and the
maximum of the following ones, in milliseconds, with the response sizes.

    python benchmarks/ui.py [--experiments 10000] [--repeats 9]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ratchet.models import Usage
from ratchet.store.ledger import Ledger

TOML = """\
[study]
name = "bench"
[files]
editable = ["train.py"]
[run]
command = "python train.py"
budget = 300
[metric]
name = "val_bpb"
[proposer]
kind = "llm"
"""
ENDPOINTS = {
    "overview": "/api/overview",
    "table": "/api/experiments?fields=table",
    "chart": "/api/chart",
    "rows (full, as ratchet log --json)": "/api/experiments",
}


def build(root: Path, count: int) -> Path:
    """A study directory with a ledger of ``count`` experiments under tag ``bench``."""
    (root / "ratchet.toml").write_text(TOML)
    (root / "program.md").write_text("Lower val_bpb.\n")
    (root / "train.py").write_text("LR = 0.01\n")
    rng = random.Random(0)
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    best, parent = 1.0, "0" * 40
    for n in range(count):
        status = "baseline" if n == 0 else rng.choices(
            ["keep", "discard", "crash", "pruned", "rejected"], [3, 80, 7, 8, 2]
        )[0]
        commit = f"{n:040x}"
        patch = f"--- train.py\n-LR = {best:.5f}\n+LR = {best * 0.99:.5f}\n"
        exp = ledger.start(
            tag="bench", parent=parent if n else None, commit=commit,
            description=f"experiment {n}: scale the learning rate and warmup by a small factor",
            rationale="because the loss curve flattens early",
            meta={"proposer": "llm", "patch": patch},
            usage=Usage(1200, 300, 0.002), log_dir=str(root / ".ratchet" / "logs" / "{id}"),
        )  # fmt: skip
        metric = None
        if status in ("baseline", "keep", "discard"):
            metric = best - 0.001 if status == "keep" else best + abs(rng.gauss(0.01, 0.01))
            ledger.add_sample(exp, seed=0, value=metric, status="ok", duration_s=300.0)
        if status in ("baseline", "keep"):
            best, parent = metric, commit
        ledger.finish(exp, status=status, metric=metric, reason="", duration_s=300.0)
    ledger.close()
    return root


def timed(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        size = len(response.read())
    return (time.perf_counter() - start) * 1000, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        build(root, args.experiments)
        took = time.perf_counter() - start
        print(f"ledger of {args.experiments} experiments built in {took:.1f} s")
        server = subprocess.Popen(
            [sys.executable, "-m", "ratchet", "ui", str(root), "--port", "0"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            started = time.perf_counter()
            base = server.stdout.readline().split()[2].rstrip("/")  # type: ignore[union-attr]
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/static/app.css", timeout=5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            print(f"server up (ledger decoded) {time.perf_counter() - started:.2f} s after start")
            print(f"{'request':<36} {'first ms':>8} {'median ms':>10} {'max ms':>8} {'bytes':>10}")
            for name, path in ENDPOINTS.items():
                first, size = timed(base + path)
                warm = [timed(base + path)[0] for _ in range(args.repeats)]
                print(
                    f"{name:<36} {first:8.1f} {statistics.median(warm):10.1f}"
                    f" {max(warm):8.1f} {size:10,}"
                )
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
