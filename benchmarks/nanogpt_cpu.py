"""Measure the nanogpt study on this machine: tokens/s, MFU and val_bpb for a budget.

Runs the study exactly as Ratchet would (``python train.py`` with RATCHET_BUDGET
and RATCHET_DEADLINE set, then ``python prepare.py evaluate model.pt2``) in a
temporary copy of examples/nanogpt, and prints what it measured. Figures only;
nothing here passes or fails.

    python benchmarks/nanogpt_cpu.py                          # default train.py, 60 s
    python benchmarks/nanogpt_cpu.py --budget 60 --budget 300 # one run per budget
    python benchmarks/nanogpt_cpu.py --set WIDTH=96 --set LEARNING_RATE=4e-3
    python benchmarks/nanogpt_cpu.py --profile                # where a training step's time goes

``--set NAME=VALUE`` rewrites one UPPERCASE constant of the copied train.py (or
prepare.py), so configurations can be compared without editing the study. Data are prepared
in $RATCHET_DATA_DIR (or the default cache) first. The machine's load average
is printed before and after each run: on a shared machine, compare runs only
under similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = Path(__file__).resolve().parents[1] / "examples" / "nanogpt"
SUMMARY_LINE = re.compile(r"^(\w+):\s+(\S+)\s*$", re.M)


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def apply_overrides(workdir: Path, overrides: list[str]) -> None:
    """Rewrite ``NAME = ...`` in train.py, or else in prepare.py (e.g. MAX_SEQ_LEN)."""
    for item in overrides:
        name, _, value = item.partition("=")
        for path in (workdir / "train.py", workdir / "prepare.py"):
            pattern = rf"^{name} = [^#\n]*"
            text, count = re.subn(pattern, f"{name} = {value}  ", path.read_text(), flags=re.M)
            if count == 1:
                path.write_text(text)
                break
        else:
            raise SystemExit(f"--set {item}: neither train.py nor prepare.py has {name} = ...")


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[str, float]:
    started = time.time()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.time() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout, seconds


def measure(workdir: Path, budget: float, seed: int) -> dict[str, object]:
    env = dict(os.environ, RATCHET_BUDGET=str(budget), RATCHET_SEED=str(seed))
    env["RATCHET_DEADLINE"] = str(time.time() + budget)
    before = load()
    train_out, train_seconds = run([sys.executable, "train.py"], workdir, env)
    eval_out, eval_seconds = run(
        [sys.executable, "prepare.py", "evaluate", "model.pt2"], workdir, env
    )
    summary = dict(SUMMARY_LINE.findall(train_out + eval_out))
    return {
        "budget": budget,
        "val_bpb": float(summary["val_bpb"]),
        "tokens_per_sec": float(summary["tokens_per_sec"]),
        "mfu_percent": float(summary["mfu_percent"]),
        "num_steps": int(summary["num_steps"]),
        "num_params_M": float(summary["num_params_M"]),
        "train_wall_s": round(train_seconds, 1),
        "eval_wall_s": round(eval_seconds, 2),
        "eval_pct_of_budget": round(100 * eval_seconds / budget, 1),
        "load_before": before,
        "load_after": load(),
    }


def profile(workdir: Path, budget: float) -> None:
    """Run train.py in this process under torch.profiler and print the top operators."""
    import torch

    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    os.environ.update(RATCHET_BUDGET=str(budget), RATCHET_DEADLINE=str(time.time() + budget))
    sys.argv = ["train.py"]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        runpy.run_path("train.py", run_name="__main__")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, action="append", help="seconds (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="profile a 20 s run instead")
    args = parser.parse_args()
    subprocess.run([sys.executable, "prepare.py"], cwd=STUDY, check=True)
    with tempfile.TemporaryDirectory(prefix="nanogpt-bench-") as tmp:
        workdir = Path(tmp) / "nanogpt"
        shutil.copytree(STUDY, workdir, ignore=shutil.ignore_patterns("model.pt2", "__pycache__"))
        apply_overrides(workdir, args.set)
        print(f"# {load()}  cpus {os.cpu_count()}  overrides {args.set or 'none'}", flush=True)
        if args.profile:
            profile(workdir, 20.0)
            return
        for budget in args.budget or [60.0]:
            print(json.dumps(measure(workdir, budget, args.seed) | {"set": args.set}), flush=True)


if __name__ == "__main__":
    main()
