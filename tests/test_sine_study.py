"""The sine example study: train.py + evaluate.py as real processes."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ratchet.proposers.mutate import find_literals

SINE = Path(__file__).resolve().parents[1] / "examples" / "sine"


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """A fresh copy of the sine study."""
    for name in ("train.py", "evaluate.py", "program.md", "ratchet.toml"):
        shutil.copy(SINE / name, tmp_path / name)
    return tmp_path


def run(study: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run one of the study's scripts the way the harness does: in the study directory."""
    env = {**os.environ, "RATCHET_SEED": "0"}
    return subprocess.run(
        [sys.executable, script], cwd=study, capture_output=True, text=True, timeout=30, env=env
    )


def mse_of(output: str) -> float:
    """The value of the last `mse: VALUE` line."""
    return float(re.findall(r"^mse: (\S+)$", output, re.MULTILINE)[-1])


def test_train_then_evaluate_prints_a_finite_mse(study: Path) -> None:
    assert run(study, "train.py").returncode == 0
    coefficients = json.loads((study / "coefficients.json").read_text())["coefficients"]
    assert len(coefficients) >= 2
    result = run(study, "evaluate.py")
    assert result.returncode == 0, result.stderr
    value = mse_of(result.stdout)
    assert math.isfinite(value) and 0 < value < 1


def test_evaluate_rejects_a_missing_coefficients_file(study: Path) -> None:
    result = run(study, "evaluate.py")
    assert result.returncode != 0
    assert "coefficients.json not found" in result.stderr
    assert "mse:" not in result.stdout


@pytest.mark.parametrize(
    "content",
    [
        '{"coefficients": [0.1, NaN, 0.2]}',
        '{"coefficients": [Infinity]}',
        '{"coefficients": [1e308, 1e308, 1e308, 1e308, 1e308]}',
        '{"coefficients": []}',
        '{"coefficients": [true, 0.5]}',
        '{"weights": [0.5]}',
        "[0.5, 0.1]",
        "not json",
    ],
)
def test_evaluate_rejects_bad_coefficients(study: Path, content: str) -> None:
    (study / "coefficients.json").write_text(content)
    result = run(study, "evaluate.py")
    assert result.returncode != 0
    assert result.stderr.startswith("evaluate.py: ")
    assert "Traceback" not in result.stderr
    assert "mse:" not in result.stdout


def test_evaluate_does_not_import_train(study: Path) -> None:
    (study / "train.py").write_text('raise SystemExit("train.py was imported")\n')
    (study / "coefficients.json").write_text('{"coefficients": [0.0, 1.0]}')
    result = run(study, "evaluate.py")
    assert result.returncode == 0, result.stderr
    expected = sum((x - math.sin(x)) ** 2 for x in [-3 + 6 * i / 200 for i in range(201)]) / 201
    assert mse_of(result.stdout) == pytest.approx(expected, rel=1e-6)


def test_the_mutator_sees_exactly_the_hyperparameters(study: Path) -> None:
    names = {lit.name for lit in find_literals("train.py", (study / "train.py").read_text())}
    assert names == {
        "DEGREE", "LEARNING_RATE", "MOMENTUM", "STEPS", "N_POINTS", "INIT_SCALE", "WEIGHT_DECAY",
    }  # fmt: skip


def test_ratchet_toml_is_the_documented_study(study: Path) -> None:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((study / "ratchet.toml").read_text())
    assert config == {
        "study": {"name": "sine", "program": "program.md"},
        "files": {"editable": ["train.py"], "protected": ["evaluate.py"]},
        "run": {"command": "python train.py", "budget": 10, "grace": 2},
        "evaluate": {
            "command": "python evaluate.py",
            "budget": 10,
            "inputs": ["coefficients.json"],
        },
        "metric": {"name": "mse", "goal": "minimize"},
        "decision": {"rule": "strict"},
        "proposer": {"kind": "mutate"},
    }
