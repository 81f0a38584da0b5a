"""The deceptive example study: one knob, a near shallow basin and a far deep one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ratchet.proposers.mutate import find_literals
from ratchet.study import load_study

DECEPTIVE = Path(__file__).resolve().parents[1] / "examples" / "deceptive"


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """A fresh copy of the deceptive study."""
    for name in ("train.py", "evaluate.py", "program.md", "ratchet.toml"):
        shutil.copy(DECEPTIVE / name, tmp_path / name)
    return tmp_path


def loss_at(study: Path, scale: str) -> subprocess.CompletedProcess[str]:
    """Set SCALE, run train.py then evaluate.py as the harness does; the evaluate result."""
    train = study / "train.py"
    train.write_text(re.sub(r"^SCALE = \S+", f"SCALE = {scale}", train.read_text(), flags=re.M))
    env = {**os.environ, "RATCHET_SEED": "0"}
    for script in ("train.py", "evaluate.py"):
        done = subprocess.run([sys.executable, script], cwd=study, capture_output=True,
                              text=True, timeout=30, env=env)  # fmt: skip
        if done.returncode != 0:
            return done
    return done


def value(done: subprocess.CompletedProcess[str]) -> float:
    assert done.returncode == 0, done.stderr
    return float(re.findall(r"^loss: (\S+)$", done.stdout, re.M)[-1])


def test_two_basins_and_a_ridge_between(study: Path) -> None:
    start = value(loss_at(study, "1.0"))
    assert value(loss_at(study, "1.2")) < start  # a small step up improves at once
    assert value(loss_at(study, "0.8")) > start  # a small step down gets worse (the ridge)
    assert value(loss_at(study, "2.51")) == pytest.approx(0.4, abs=1e-3)  # the shallow basin
    assert value(loss_at(study, "0.01")) == pytest.approx(0.0, abs=1e-6)  # the deep one
    assert value(loss_at(study, "0.03")) < 0.4 < value(loss_at(study, "0.3")) < start


@pytest.mark.parametrize("scale", ["0.0", "-1.0", "float('inf')"])
def test_a_scale_that_is_not_positive_fails_with_a_sentence(study: Path, scale: str) -> None:
    done = loss_at(study, scale)
    assert done.returncode == 1 and "positive finite number" in done.stderr
    assert "loss:" not in done.stdout


def test_the_study_loads_and_mutate_sees_the_one_knob() -> None:
    study = load_study(DECEPTIVE)
    assert study.search.policy == "greedy" and study.metric.name == "loss"
    literals = find_literals("train.py", (DECEPTIVE / "train.py").read_text())
    assert [lit.name for lit in literals] == ["SCALE"]
