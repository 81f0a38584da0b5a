"""Ratchet's own time per experiment: wall time minus the experiment process.

A no-op study (`cat value.txt` prints the metric) in a fresh git repository,
40 experiments from the replay proposer (alternating keeps and discards), the
real loop with git, the ledger, the runner and results.tsv export. For each
experiment: time between consecutive finished experiments minus the time the
experiment's command itself ran. Prints median, mean and p90 in milliseconds.

``--evaluate print`` adds a sine-like evaluate phase (``python evaluate.py``
reads the declared input ``result.txt`` the run phase copies, and prints the
metric), ``--evaluate report`` the same evaluator reporting through
``ratchet.evaluation.report``: the overhead then includes sealing the
evaluate phase (its directory, copies, pipe, cleanup), and the experiment
process time includes the evaluator's Python.

    python benchmarks/overhead.py [--experiments 40] [--evaluate none|print|report]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ratchet import RunOptions, load_study, run_study
from ratchet.judge import StrictJudge
from ratchet.models import Experiment
from ratchet.observer import Observer
from ratchet.proposers import ReplayProposer

TOML = """\
[study]
name = "noop"
[files]
editable = ["value.txt"]
[run]
command = "cat value.txt"
budget = 10
grace = 1
[metric]
name = "score"
[proposer]
kind = "replay"
"""


EVALUATE_TOML = """\
[evaluate]
command = "python evaluate.py"
budget = 10
inputs = ["result.txt"]
"""
EVALUATORS = {
    "print": "from pathlib import Path\nprint(Path('result.txt').read_text())\n",
    "report": (
        "from pathlib import Path\n"
        "from ratchet.evaluation import report\n"
        "report(score=float(Path('result.txt').read_text().split()[1]))\n"
    ),
}


class Clock(Observer):
    """Records when each experiment finished and how long its command ran."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, Experiment]] = []

    def experiment_finished(self, experiment: Experiment) -> None:
        self.marks.append((time.perf_counter(), experiment))


def make_study(root: Path, n: int, evaluate: str = "none") -> Path:
    root.mkdir()
    toml = TOML
    if evaluate != "none":
        toml = toml.replace("cat value.txt", "cp value.txt result.txt").replace(
            "[metric]", EVALUATE_TOML + "[metric]"
        )
        toml = toml.replace("[files]\n", '[files]\nprotected = ["evaluate.py"]\n')
        (root / "evaluate.py").write_text(EVALUATORS[evaluate])
    (root / "ratchet.toml").write_text(toml)
    (root / "program.md").write_text("noop\n")
    (root / "value.txt").write_text("score: 1000\n")
    env = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
        "PATH": "/usr/bin:/bin",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env)
    # alternate: an improvement, then a regression
    lines = [
        {
            "description": f"step {i}",
            "edits": {"value.txt": f"score: {1000 - i if i % 2 == 0 else 5000 + i}\n"},
        }
        for i in range(n)
    ]
    replay = root.parent / "replay.jsonl"
    replay.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=40)
    parser.add_argument("--evaluate", choices=("none", "print", "report"), default="none")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "study"
        replay = make_study(root, args.experiments, args.evaluate)
        clock = Clock()
        study = load_study(root)
        run_study(study, ReplayProposer(replay), StrictJudge(), RunOptions(tag="bench"), clock)
    overheads = [
        (t1 - t0 - exp.duration_s) * 1000
        for (t0, _), (t1, exp) in zip(clock.marks, clock.marks[1:], strict=False)
    ]
    commands = [exp.duration_s * 1000 for _, exp in clock.marks[1:]]
    overheads.sort()
    print(f"experiments:            {len(overheads)}")
    print(f"experiment process, ms: median {statistics.median(commands):.1f}")
    print(
        f"ratchet overhead, ms:   median {statistics.median(overheads):.1f}"
        f"  mean {statistics.fmean(overheads):.1f}"
        f"  p90 {overheads[int(0.9 * (len(overheads) - 1))]:.1f}"
    )
    print("target: <= 30 ms per experiment (median)")


if __name__ == "__main__":
    main()
