"""``ratchet init --from openevolve|shinka``: peer examples ported and run through the real CLI.

The examples are written here, in the peers' shapes (not copied from them):
an OpenEvolve evaluator ``evaluate(program_path)`` returning an
``EvaluationResult`` from ``openevolve.evaluation_result``, and a Shinka
``evaluate.py`` whose ``main(program_path, results_dir)`` calls
``shinka.core.run_shinka_eval``. Neither package is installed: the ported
study's shim answers those imports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ratchet

OE_PROGRAM = """\
# A guess at the point that maximizes the score
print("combined_score: 1000")  # a candidate trying to forge the metric on its output
# EVOLVE-BLOCK-START
X = 1.5
Y = -0.5
# EVOLVE-BLOCK-END


def point():
    return X, Y
"""

OE_EVALUATOR = """\
import importlib.util

from openevolve.evaluation_result import EvaluationResult


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x, y = module.point()
    score = -((x - 3.0) ** 2) - (y - 1.0) ** 2
    return EvaluationResult(metrics={"combined_score": score, "distance": -score},
                            artifacts={"note": "fine"})
"""

OE_CONFIG = """\
max_iterations: 25
llm:
  api_base: "http://127.0.0.1:9/v1"
  models:
    - name: "small-model"
      weight: 1.0
prompt:
  system_message: |
    You are improving a point so that it lies near (3, 1).
evaluator:
  timeout: 20
"""

SHINKA_PROGRAM = """\
# EVOLVE-BLOCK-START
STEP = 0.25
# EVOLVE-BLOCK-END


def run_experiment(seed=0):
    print("combined_score: 1000")
    return [STEP * (i + seed) for i in range(4)]
"""

SHINKA_EVALUATE = """\
import argparse

from shinka.core import run_shinka_eval


def validate(values):
    for v in values:
        if v < 0:
            return False, f"value {v} is negative"
    return True, None


def aggregate(results):
    return {"combined_score": sum(sum(r) for r in results), "public": {"runs": len(results)}}


def main(program_path, results_dir):
    run_shinka_eval(
        program_path=program_path,
        results_dir=results_dir,
        experiment_fn_name="run_experiment",
        num_runs=2,
        get_experiment_kwargs=lambda i: {"seed": i},
        validate_fn=validate,
        aggregate_metrics_fn=aggregate,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--program_path", default="initial.py")
    parser.add_argument("--results_dir", default="results")
    args = parser.parse_args()
    main(args.program_path, args.results_dir)
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def rows(study: Path) -> list[dict]:
    done = ratchet("log", str(study), "--tag", "t", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def check_mutations(found: list[dict], allowed: tuple[str, ...] = ("keep", "discard")) -> None:
    """Each mutate experiment got a real metric and was kept only when it beat the best."""
    for row in found[1:3]:
        assert row["status"] in allowed, row
        if row["status"] in ("keep", "discard"):
            best = max(r["metric"] for r in found if r["id"] < row["id"]
                       and r["status"] in ("baseline", "keep"))  # fmt: skip
            assert (row["status"] == "keep") == (row["metric"] > best)


def test_an_openevolve_example_runs_as_a_study(tmp_path: Path) -> None:
    files = {"initial_program.py": OE_PROGRAM, "evaluator.py": OE_EVALUATOR}
    source = write(tmp_path / "oe", {**files, "config.yaml": OE_CONFIG})
    study = tmp_path / "study"
    done = ratchet("init", str(study), "--from", "openevolve", str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--max-experiments 25" in done.stdout
    assert (study / "evaluator.py").read_text() == OE_EVALUATOR  # unmodified
    program = (study / "program.md").read_text()
    assert "You are improving a point so that it lies near (3, 1)." in program
    toml = (study / "ratchet.toml").read_text()
    assert 'editable = ["initial_program.py:EVOLVE-BLOCK"]' in toml and "budget = 20" in toml
    assert '# model = "small-model"' in toml and "http://127.0.0.1:9/v1" in toml
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "2",
                   "--proposer", "mutate")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = rows(study)
    assert len(found) == 3 and found[0]["status"] == "baseline"
    # what the evaluator computes for (1.5, -0.5), not the 1000 the program prints
    assert found[0]["metric"] == pytest.approx(-(1.5**2) - 1.5**2)
    check_mutations(found)


def test_an_openevolve_error_is_rejected_and_an_exception_a_crash(tmp_path: Path) -> None:
    evaluator = OE_EVALUATOR.replace(
        "    return EvaluationResult(",
        '    if x < 2:\n        return {"combined_score": 0.0, "error": f"x = {x} is too small"}\n'
        "    return EvaluationResult(",
    )
    unmarked = "".join(  # no EVOLVE-BLOCK: the whole program is editable, renaming point() too
        line for line in OE_PROGRAM.replace("X = 1.5", "X = 2.5").splitlines(keepends=True)
        if "EVOLVE-BLOCK" not in line
    )
    source = write(tmp_path / "oe", {"initial_program.py": unmarked, "evaluator.py": evaluator})
    study = tmp_path / "study"
    assert ratchet("init", str(study), "--from", "openevolve", str(source)).returncode == 0
    original = (study / "initial_program.py").read_text()
    small = original.replace("X = 2.5", "X = 1.0")
    renamed = original.replace("def point():", "def where():")
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(
        json.dumps({"description": d, "edits": {"initial_program.py": text}}) + "\n"
        for d, text in (("smaller x", small), ("renamed", renamed))
    ))  # fmt: skip
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "2",
                   "--proposer", "replay", "--replay", str(replay))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = rows(study)
    assert found[0]["status"] == "baseline" and found[0]["metric"] == pytest.approx(-2.5)
    assert found[1]["status"] == "rejected" and "x = 1.0 is too small" in found[1]["reason"]
    # the evaluator raising (the program lost point()) is a crash that names the exception
    assert found[2]["status"] == "crash" and "AttributeError" in found[2]["reason"]


def test_a_shinka_example_runs_and_an_incorrect_program_is_rejected(tmp_path: Path) -> None:
    source = write(tmp_path / "sh", {"initial.py": SHINKA_PROGRAM, "evaluate.py": SHINKA_EVALUATE})
    study = tmp_path / "study"
    done = ratchet("init", str(study), "--from", "shinka", str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (study / "evaluate.py").read_text() == SHINKA_EVALUATE
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "2",
                   "--proposer", "mutate")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = rows(study)
    # seeds 0 and 1: 0.25 * (0+1+2+3) + 0.25 * (1+2+3+4), not the 1000 the program prints
    assert found[0]["status"] == "baseline" and found[0]["metric"] == pytest.approx(4.0)
    check_mutations(found, ("keep", "discard", "rejected"))  # a negative STEP is incorrect
    negative = (study / "initial.py").read_text().replace("STEP = 0.25", "STEP = -0.25")
    replay = tmp_path / "replay.jsonl"
    replay.write_text(json.dumps({"description": "negative", "edits": {"initial.py": negative}}))
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "1",
                   "--proposer", "replay", "--replay", str(replay))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    last = rows(study)[-1]
    assert last["status"] == "rejected" and last["metric"] is None
    assert "incorrect: value -0.25 is negative" in last["reason"]


def test_only_the_evolve_block_of_a_ported_program_may_change(tmp_path: Path) -> None:
    files = {"initial_program.py": OE_PROGRAM, "evaluator.py": OE_EVALUATOR}
    source = write(tmp_path / "oe", files)
    study = tmp_path / "study"
    assert ratchet("init", str(study), "--from", "openevolve", str(source)).returncode == 0
    original = (study / "initial_program.py").read_text()
    outside = original.replace("return X, Y", "return 3.0, 1.0")
    replay = tmp_path / "replay.jsonl"
    edit = {"description": "outside", "edits": {"initial_program.py": outside}}
    replay.write_text(json.dumps(edit))
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "1",
                   "--proposer", "replay", "--replay", str(replay))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    last = rows(study)[-1]
    assert last["status"] == "rejected" and "outside the EVOLVE-BLOCK" in last["reason"]


@pytest.mark.parametrize(
    ("peer", "files", "says"),
    [
        ("openevolve", {"evaluator.py": OE_EVALUATOR}, "initial_program.py is missing"),
        ("openevolve", {"initial_program.py": OE_PROGRAM, "evaluator.py": "def score(p):\n  1\n"},
         "defines no function evaluate()"),
        ("shinka", {"initial.py": SHINKA_PROGRAM}, "evaluate.py is missing"),
        ("shinka", {"initial.py": "", "evaluate.py": "def run(p):\n  1\n"}, "no function main()"),
        ("alphaevolve", {"initial.py": ""}, "unknown peer"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(
    tmp_path: Path, peer: str, files: dict[str, str], says: str
) -> None:
    source = write(tmp_path / "src", files)
    done = ratchet("init", str(tmp_path / "study"), "--from", peer, str(source))
    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "study" / "ratchet.toml").exists()


def test_a_named_metric_is_the_one_reported(tmp_path: Path) -> None:
    files = {"initial_program.py": OE_PROGRAM, "evaluator.py": OE_EVALUATOR}
    source = write(tmp_path / "oe", files)
    study = tmp_path / "study"
    done = ratchet("init", str(study), "--from", "openevolve", str(source), "--metric", "distance")
    assert done.returncode == 0, done.stderr
    assert ratchet("run", str(study), "--tag", "t", "--max-experiments", "0").returncode == 0
    assert rows(study)[0]["metric"] == pytest.approx(4.5)




def test_an_evaluator_that_runs_the_program_itself_and_reads_its_data(tmp_path: Path) -> None:
    """The other common OpenEvolve shape: a subprocess with a timeout, and a data file beside it."""
    evaluator = """\
import json
import os
import subprocess
import sys


def evaluate(program_path):
    with open(os.path.join(os.path.dirname(__file__), "target.json")) as f:
        target = json.load(f)["target"]
    done = subprocess.run([sys.executable, program_path], capture_output=True, text=True,
                          timeout=10)
    value = float(done.stdout.strip().splitlines()[-1])
    return {"combined_score": -abs(value - target), "runs": 1}
"""
    files = {"initial_program.py": "print(7.25)\n", "evaluator.py": evaluator,
             "target.json": '{"target": 10}'}  # fmt: skip
    source = write(tmp_path / "oe", files)
    study = tmp_path / "study"
    assert ratchet("init", str(study), "--from", "openevolve", str(source)).returncode == 0
    assert '"target.json"' in (study / "ratchet.toml").read_text()  # shipped data is protected
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(study)[0]["metric"] == pytest.approx(-2.75)
