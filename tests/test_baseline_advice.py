"""A failed baseline says which phase failed and whose command to fix, and a metric printed
under a near name is named, through the real ``ratchet run``."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_repo, ratchet

from ratchet.metrics import parse_output

TOML = """\
[study]
name = "advice"
program = "program.md"

[files]
editable = ["train.py"]
protected = ["evaluate.py"]

[run]
command = "python train.py"
budget = 10
grace = 1
sandbox = "process"
{evaluate}
[metric]
name = "{metric}"
goal = "minimize"

[proposer]
kind = "mutate"
"""
EVALUATE = '\n[evaluate]\ncommand = "python evaluate.py"\nbudget = 10\ninputs = []\n'


def _baseline(tmp_path: Path, train: str, evaluate: str = "", metric: str = "runtime") -> str:
    """The one-line error of ``ratchet run --max-experiments 0`` (which must exit 1)."""
    section = EVALUATE if evaluate else ""
    study = make_repo(
        tmp_path / "study",
        {
            "ratchet.toml": TOML.format(evaluate=section, metric=metric),
            "program.md": "Make it faster.\n",
            "train.py": train,
            "evaluate.py": evaluate or "print('unused')\n",
        },
    )
    done = ratchet("run", str(study), "--max-experiments", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stderr.replace("\n", " ")


def test_a_metric_printed_under_a_near_name_is_named(tmp_path: Path) -> None:
    said = _baseline(tmp_path, "print('runtime_ms: 108.2')\n")
    assert "the run phase printed no runtime: make `python train.py` print `runtime: VALUE`" in said
    assert 'it printed runtime_ms — if that is the metric, set [metric] name = "runtime_ms"' in said


def test_a_failing_evaluation_is_named_with_its_own_command(tmp_path: Path) -> None:
    evaluate = "import sys\nsys.exit('cannot read result.json')\n"
    said = _baseline(tmp_path, "print('done')\n", evaluate=evaluate)
    assert "evaluate phase exited with code 1: cannot read result.json" in said
    assert "the evaluate phase failed: fix the study until `python evaluate.py` works" in said
    assert "(it runs sealed" in said and "`python train.py`" not in said
    assert "see `ratchet show 1 --log`" in said


def test_a_crashing_run_names_the_run_command(tmp_path: Path) -> None:
    said = _baseline(tmp_path, "raise SystemExit('no data')\n")
    assert "the run phase failed: fix the study until `python train.py` works" in said


@pytest.mark.parametrize(
    ("printed", "metric", "near"),
    [
        ("runtime_ms: 1", "runtime", "runtime_ms"),
        ("MSE: 1", "mse", "MSE"),
        ("loss: 1", "mse", None),
    ],
)
def test_near_names_are_close_spellings_only(printed: str, metric: str, near: str | None) -> None:
    problem = parse_output(printed, metric).problem or ""
    assert (f"it printed {near} " in problem) if near else ("it printed" not in problem)
