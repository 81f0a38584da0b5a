"""ratchet.toml: every bad input ends in one sentence, exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST_TOML, make_repo, ratchet

from ratchet.errors import ConfigError
from ratchet.study import load_study


def _study(tmp_path: Path, toml: str, files: dict[str, str] | None = None) -> Path:
    files = {"program.md": "x\n", "value.txt": "score: 5\n", "check.sh": "x\n", **(files or {})}
    return make_repo(tmp_path / "s", {"ratchet.toml": toml, **files})


def test_valid_study_loads(fast_study: Path) -> None:
    study = load_study(fast_study)
    assert study.name == "fast"
    assert study.editable_files() == ["value.txt"]
    assert study.protected_files() == ["check.sh", "program.md", "ratchet.toml"]
    assert study.is_editable("value.txt") and not study.is_editable("check.sh")
    assert study.is_protected("ratchet.toml") and study.is_protected("program.md")


BAD = [
    (
        FAST_TOML.replace('name = "score"', 'name = "score"\ncolour = "red"'),
        "unknown key [metric] colour",
    ),
    (FAST_TOML + "\n[extras]\nx = 1\n", "unknown section [extras]"),
    (FAST_TOML.split("[metric]")[0] + '[decision]\nrule = "strict"\n', "missing section [metric]"),
    (FAST_TOML.replace("budget = 10", "budget = 0"), "[run] budget must be a positive number"),
    (FAST_TOML.replace("budget = 10", "budget = -3"), "[run] budget must be a positive number"),
    (FAST_TOML.replace('["value.txt"]', '["nothing*.py"]'), "'nothing*.py' matches no file"),
    (
        FAST_TOML.replace('["check.sh"]', '["value.txt"]'),
        "value.txt is both editable and protected",
    ),
    (
        FAST_TOML.replace('goal = "minimize"', 'goal = "down"'),
        "[metric] goal = 'down' is not allowed",
    ),
    (FAST_TOML.replace('rule = "strict"', 'rule = "vibes"'), "[decision] rule = 'vibes'"),
    (FAST_TOML.replace('["value.txt"]', '["../x"]'), "must be relative to the study directory"),
    ("[study\nname=", "invalid TOML"),
    (
        FAST_TOML.replace('program = "program.md"', 'program = "nope.md"'),
        "'nope.md' does not exist",
    ),
    (
        FAST_TOML.replace("[metric]", '[evaluate]\ncommand = "sh check.sh"\n\n[metric]'),
        'missing key [evaluate] inputs — list the files the run phase leaves for the evaluate'
        ' command, e.g. inputs = ["coefficients.json"], or inputs = []',
    ),
    (
        FAST_TOML + '\n[confirm]\ncommand = "sh check.sh"\n',
        "missing key [confirm] inputs",
    ),
    (
        FAST_TOML.replace("[metric]", '[evaluate]\ncommand = "x"\ninputs = ["*.json"]\n[metric]'),
        "input '*.json' is a glob",
    ),
    (
        FAST_TOML.replace("[metric]", '[evaluate]\ncommand = "x"\ninputs = ["../o"]\n[metric]'),
        "input '../o' must be a path relative to the study directory",
    ),
    (
        FAST_TOML.replace('command = "cat value.txt"\n', ""),
        "missing key [run] command",
    ),
]


@pytest.mark.parametrize("toml, expected", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_config_is_one_clear_sentence(tmp_path: Path, toml: str, expected: str) -> None:
    root = _study(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_study(root)
    message = str(info.value)
    assert expected in message
    assert str(root / "ratchet.toml") in message
    assert "\n" not in message and " — " in message  # one sentence with its fix


@pytest.mark.parametrize("toml, expected", BAD[:6], ids=[b[1][:30] for b in BAD[:6]])
def test_bad_config_cli_exit_2_without_traceback(tmp_path: Path, toml: str, expected: str) -> None:
    root = _study(tmp_path, toml)
    done = ratchet("run", str(root), "--max-experiments", "0")
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_missing_config_names_init(tmp_path: Path) -> None:
    done = ratchet("run", str(tmp_path))
    assert done.returncode == 2
    assert "ratchet init" in done.stderr


def test_not_a_git_repository(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    for name, text in {
        "ratchet.toml": FAST_TOML,
        "program.md": "x",
        "value.txt": "score: 1\n",
        "check.sh": "x",
    }.items():
        (root / name).write_text(text)
    done = ratchet("run", str(root), "--max-experiments", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert "not inside a git repository" in done.stderr and "git init" in done.stderr
    assert "Traceback" not in done.stderr


def test_git_missing(fast_study: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    done = subprocess.run(
        [sys.executable, "-m", "ratchet", "run", str(fast_study), "--max-experiments", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "git is not installed" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_cli_values_exit_2(fast_study: Path) -> None:
    for args, text in [
        (["--budget", "0"], "--budget must be a positive"),
        (["--tag", "bad tag!"], "is not a valid tag"),
        (["--proposer", "replay"], "--replay FILE"),
    ]:
        done = ratchet("run", str(fast_study), *args)
        assert done.returncode == 2, done.stderr
        assert text in done.stderr


RUNLESS = FAST_TOML.replace('command = "cat value.txt"\nbudget = 10\n', "").replace(
    "[metric]", '[evaluate]\ncommand = "python evaluate.py"\nbudget = 7\ninputs = []\n\n[metric]'
)


def test_a_study_whose_evaluator_runs_the_candidate_needs_no_run_command(tmp_path: Path) -> None:
    study = load_study(_study(tmp_path, RUNLESS))
    assert study.run.command is None
    assert study.run.budget == 7  # the evaluate phase's, when [run] gives none
    assert study.evaluate is not None and study.evaluate.inputs == []


def test_a_study_without_declared_inputs_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    toml = FAST_TOML.replace("[metric]", '[evaluate]\ncommand = "sh check.sh"\n\n[metric]')
    done = ratchet("run", str(_study(tmp_path, toml)), "--max-experiments", "0")
    assert done.returncode == 2
    assert "missing key [evaluate] inputs" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
