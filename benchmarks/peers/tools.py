"""The three tools as the harness drives them: a task directory, a command, and what got recorded.

Each driver writes the task in the shape the tool documents (read from the
installed sources, written fresh here), points the tool at the scripted
server, and afterwards reads back what the tool recorded for each
iteration, as one short line each. Settings left at the tool's defaults
unless the benchmark needs otherwise: one evaluation at a time, the
scenario's time limit, no embeddings or meta-summaries (they would be
extra LLM calls), and for Ratchet the ``strict`` rule (one run per
candidate, as the peers do).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tasks import PROGRAM

__all__ = ["Launch", "TOOLS", "Tool"]

MODEL = "bench-model"


@dataclass
class Launch:
    command: list[str]
    cwd: Path
    program: str  # the program file's name, as answers call it
    evaluator: Path  # the evaluator file the user wrote
    fake_evaluator: str  # an evaluator of this tool's shape that reports 1e9
    env: dict[str, str] = field(default_factory=dict)


class Tool:
    name = ""
    dialect = ""

    def prepare(self, work: Path, base_url: str, iterations: int, timeout: int) -> Launch:
        raise NotImplementedError

    def records(self, work: Path) -> list[str]:
        """One line per recorded iteration, in order (the initial program first)."""
        raise NotImplementedError


def _git(cwd: Path, *args: str) -> None:
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", *args], cwd=cwd, check=True, env=env, capture_output=True)


# --- Ratchet ------------------------------------------------------------------------------

RATCHET_EVALUATE = '''\
"""Fixed evaluation: reads result.json the run phase left behind; prints the score."""
import json
import sys

SCORE_SCALE = 1.0

if "--import" in sys.argv:  # the one-phase variant: score the program in this process
    import program

    value = float(program.value())
else:
    try:
        with open("result.json") as f:
            value = float(json.load(f)["value"])
    except (OSError, ValueError, KeyError) as exc:
        print(f"no valid result.json: {exc}")
        sys.exit(3)
print(f"score: {value * SCORE_SCALE}")
'''

RATCHET_TOML = """\
[study]
name = "peers"

[files]
editable = ["program.py"]
protected = ["evaluate.py"]

[run]
command = "{run}"
budget = {timeout}
grace = 1
sandbox = "{sandbox}"
{evaluate}
[metric]
name = "score"
goal = "maximize"

[decision]
rule = "strict"

[prune]
enabled = false

[proposer]
kind = "llm"
model = "{model}"
base_url = "{base_url}"
retries = 0
max_failures = 20
"""


class Ratchet(Tool):
    """``ratchet run`` on a git repository: run phase, then the sealed evaluate phase."""

    name = "ratchet"
    dialect = "ratchet"
    one_phase = False
    sandbox = "process"

    def prepare(self, work: Path, base_url: str, iterations: int, timeout: int) -> Launch:
        study = work / "study"
        study.mkdir(parents=True)
        (study / "program.py").write_text(PROGRAM)
        (study / "evaluate.py").write_text(RATCHET_EVALUATE)
        (study / "program.md").write_text("Make value() larger.\n")
        if self.one_phase:
            run, evaluate = "python evaluate.py --import", ""
        else:
            run = "python program.py"
            evaluate = (
                f'\n[evaluate]\ncommand = "python evaluate.py"\nbudget = {timeout}\n'
                'inputs = ["result.json"]\n'
            )
        (study / "ratchet.toml").write_text(
            RATCHET_TOML.format(
                run=run, evaluate=evaluate, timeout=timeout, model=MODEL, base_url=base_url,
                sandbox=self.sandbox,
            )
        )
        _git(study, "init", "-q")
        _git(study, "add", "-A")
        _git(study, "commit", "-qm", "study")
        return Launch(
            command=[sys.executable, "-m", "ratchet", "run", str(study), "--tag", "bench",
                     "--max-experiments", str(iterations)],
            cwd=study,
            program="program.py",
            evaluator=study / "evaluate.py",
            fake_evaluator='print("score: 1e9")\n',
        )

    def records(self, work: Path) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-m", "ratchet", "log", str(work / "study"), "--tag", "bench",
             "--json"],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            return [f"(ratchet log failed: {out.stderr.strip()[:200]})"]
        rows = json.loads(out.stdout)
        return [_ratchet_row(r) for r in rows]


def _ratchet_row(row: dict) -> str:
    metric = row.get("metric")
    shown = f" score={metric:g}" if isinstance(metric, (int, float)) else ""
    reason = row.get("reason") or ""
    return f"{row.get('status')}{shown}" + (f": {_short(reason)}" if reason else "")


class RatchetOnePhase(Ratchet):
    """The same, with one phase that scores the program in-process (as the peers do)."""

    name = "ratchet-1phase"
    one_phase = True


class RatchetBwrap(Ratchet):
    """The same two phases inside bubblewrap (``[run] sandbox = "bwrap"``)."""

    name = "ratchet-bwrap"
    sandbox = "bwrap"


# --- OpenEvolve ---------------------------------------------------------------------------

OPENEVOLVE_EVALUATOR = '''\
"""Scores the candidate: imports it and calls value()."""
import importlib.util

SCORE_SCALE = 1.0


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": float(module.value()) * SCORE_SCALE}
'''

OPENEVOLVE_CONFIG = """\
max_iterations: {iterations}
checkpoint_interval: 1
log_level: INFO
diff_based_evolution: true
llm:
  api_base: "{base_url}"
  api_key: "none"
  models:
    - name: "{model}"
      weight: 1.0
  retries: 0
  timeout: 60
evaluator:
  timeout: {timeout}
  cascade_evaluation: false
  parallel_evaluations: 1
"""


class OpenEvolve(Tool):
    """``openevolve-run initial_program.py evaluator.py --config config.yaml``."""

    name = "openevolve"
    dialect = "openevolve"

    def __init__(self, venv: Path) -> None:
        self.venv = venv

    def prepare(self, work: Path, base_url: str, iterations: int, timeout: int) -> Launch:
        task = work / "task"
        task.mkdir(parents=True)
        (task / "initial_program.py").write_text(PROGRAM)
        (task / "evaluator.py").write_text(OPENEVOLVE_EVALUATOR)
        (task / "config.yaml").write_text(
            OPENEVOLVE_CONFIG.format(
                iterations=iterations, base_url=base_url, model=MODEL, timeout=timeout
            )
        )
        return Launch(
            command=[str(self.venv / "bin" / "openevolve-run"), "initial_program.py",
                     "evaluator.py", "--config", "config.yaml", "--output", str(work / "out")],
            cwd=task,
            program="initial_program.py",
            evaluator=task / "evaluator.py",
            fake_evaluator="def evaluate(program_path):\n    return {'combined_score': 1e9}\n",
        )

    def records(self, work: Path) -> list[str]:
        """Programs from its last checkpoint (metrics by iteration) and iteration errors."""
        found: list[tuple[int, str]] = []
        points = sorted((work / "out" / "checkpoints").glob("checkpoint_*"),
                        key=lambda p: int(p.name.split("_")[-1]))
        for path in sorted(points[-1].glob("programs/*.json")) if points else []:
            program = json.loads(path.read_text())
            metrics = ", ".join(f"{k}={v}" for k, v in program.get("metrics", {}).items())
            found.append((program.get("iteration_found", -1), f"{metrics} (kept in database)"))
        logs = sorted((work / "out" / "logs").glob("*.log"))
        for line in logs[-1].read_text(errors="replace").splitlines() if logs else []:
            if m := re.search(r"Iteration (\d+) error: (.*)", line):
                found.append((int(m.group(1)), f"error: {_short(m.group(2))} (dropped)"))
        return [f"iter {n}: {text}" for n, text in sorted(found, key=lambda f: f[0])]


# --- ShinkaEvolve -------------------------------------------------------------------------

SHINKA_EVALUATE = '''\
"""Scores the candidate: imports it, calls value(), writes metrics.json and correct.json."""
import argparse
import importlib.util
import json
import os

SCORE_SCALE = 1.0


def main(program_path, results_dir):
    os.makedirs(results_dir, exist_ok=True)
    try:
        spec = importlib.util.spec_from_file_location("candidate", program_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        value = float(module.value()) * SCORE_SCALE
        metrics = {"combined_score": value, "public": {"value": value}, "private": {}}
        correct = {"correct": True, "error": None}
    except Exception as exc:
        metrics, correct = {}, {"correct": False, "error": repr(exc)}
    with open(os.path.join(results_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    with open(os.path.join(results_dir, "correct.json"), "w") as f:
        json.dump(correct, f)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--program_path", required=True)
    parser.add_argument("--results_dir", required=True)
    args = parser.parse_args()
    main(args.program_path, args.results_dir)
'''

SHINKA_FAKE = '''\
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--program_path")
p.add_argument("--results_dir")
a = p.parse_args()
os.makedirs(a.results_dir, exist_ok=True)
json.dump({"combined_score": 1e9, "public": {}, "private": {}},
          open(os.path.join(a.results_dir, "metrics.json"), "w"))
json.dump({"correct": True, "error": None}, open(os.path.join(a.results_dir, "correct.json"), "w"))
'''


class Shinka(Tool):
    """``shinka_run --task-dir`` with ``initial.py`` and ``evaluate.py``."""

    name = "shinka"
    dialect = "shinka"

    def __init__(self, venv: Path) -> None:
        self.venv = venv

    def prepare(self, work: Path, base_url: str, iterations: int, timeout: int) -> Launch:
        task = work / "task"
        task.mkdir(parents=True)
        (task / "initial.py").write_text(PROGRAM)
        (task / "evaluate.py").write_text(SHINKA_EVALUATE)
        sets = {
            "evo.llm_models": json.dumps([f"local/{MODEL}@{base_url}"]),
            "evo.embedding_model": "none",
            "evo.meta_rec_interval": "none",
            "evo.patch_types": '["diff"]',
            "evo.patch_type_probs": "[1.0]",
            "job.time": f"00:00:{timeout:02d}",
        }
        command = [str(self.venv / "bin" / "shinka_run"), "--task-dir", str(task),
                   "--results_dir", str(work / "results"), "--num_generations",
                   str(iterations + 1), "--max-evaluation-jobs", "1", "--max-proposal-jobs",
                   "1"]
        for key, value in sets.items():
            command += ["--set", f"{key}={value}"]
        return Launch(
            command=command,
            cwd=task,
            program="initial.py",
            evaluator=task / "evaluate.py",
            fake_evaluator=SHINKA_FAKE,
        )

    def records(self, work: Path) -> list[str]:
        """From its SQLite database: each program's correctness, score and error."""
        dbs = sorted((work / "results").glob("**/*.sqlite")) + sorted(
            (work / "results").glob("**/*.db")
        )
        if not dbs:
            return ["(no database found)"]
        with sqlite3.connect(f"file:{dbs[0]}?mode=ro", uri=True) as db:
            cols = [r[1] for r in db.execute("PRAGMA table_info(programs)")]
            order = "generation" if "generation" in cols else "rowid"
            rows = db.execute(f"SELECT * FROM programs ORDER BY {order}").fetchall()
        found, seen = [], set()
        for row in rows:
            r = dict(zip(cols, row, strict=True))
            if r.get("generation") == 0 and 0 in seen:
                continue  # the initial program, copied to each island
            seen.add(r.get("generation"))
            score = r.get("combined_score")
            shown = f" score={score:g}" if isinstance(score, (int, float)) else ""
            error = _shinka_error(r) or ("no reason stored" if not r.get("correct") else "")
            found.append(
                f"gen {r.get('generation')}: correct={bool(r.get('correct'))}{shown}"
                + (f": {_short(error)}" if error else "")
            )
        log = work / "results" / "evolution_run.log"
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if (" - WARNING - " in line or " - ERROR - " in line) and "embedding" not in line:
                found.append("log: " + _short(line.split(" - ", 3)[-1]))
        return found


def _shinka_error(row: dict) -> str:
    for key in ("text_feedback", "metadata"):
        raw = row.get(key)
        if not raw:
            continue
        if key == "metadata":
            try:
                meta = json.loads(raw)
            except (TypeError, ValueError):
                continue
            for name in ("error", "stderr_log", "error_attempt"):
                if meta.get(name):
                    return str(meta[name])
        else:
            return str(raw)
    return ""


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def make_tools(venvs: Path, names: list[str]) -> list[Tool]:
    every: dict[str, Tool] = {
        "ratchet": Ratchet(),
        "ratchet-1phase": RatchetOnePhase(),
        "ratchet-bwrap": RatchetBwrap(),
        "openevolve": OpenEvolve(venvs / "openevolve"),
        "shinka": Shinka(venvs / "shinka"),
    }
    return [every[n] for n in names]


TOOLS = ["ratchet", "ratchet-1phase", "ratchet-bwrap", "openevolve", "shinka"]
