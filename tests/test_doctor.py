"""``ratchet doctor`` on what a first run trips over: a command that cannot start, a tag whose
baseline failed, an LLM endpoint named on the command line. Real subprocesses, a real
HTTP server on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import FAST_TOML, make_repo, ratchet
from llm_servers import Answer, ScriptedLLM

from ratchet.cli.doctor import command_problem


def _study(tmp_path: Path, command: str = "cat value.txt", **files: str) -> Path:
    toml = FAST_TOML.replace('command = "cat value.txt"', f"command = {command!r}")
    return make_repo(
        tmp_path / "study",
        {
            "ratchet.toml": toml.replace('kind = "replay"', 'kind = "mutate"'),
            "program.md": "Lower the score.\n",
            "value.txt": "score: 5\n",
            "check.sh": "echo protected\n",
            **files,
        },
    )


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("python train.py", None),
        ("python trian.py --fast", "no file trian.py in"),
        ("nosuchprogram --x", "no program nosuchprogram on PATH"),
        ("./run.sh", "./run.sh is not an executable file in"),
        ("SEED=1 python -m trainer", None),  # a module: no file to look for
        ("python train.py | tee out.log", None),  # a shell line is the shell's to judge
        ("python 'train.py", "cannot be read as a command line"),
    ],
)
def test_a_command_that_cannot_start_is_named(
    tmp_path: Path, command: str, problem: str | None
) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "run.sh").write_text("echo 1\n")  # not executable
    found = command_problem(command, tmp_path, f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert (found is None) if problem is None else (problem in (found or "")), found


def test_doctor_names_a_missing_script_before_any_run(tmp_path: Path) -> None:
    root = _study(tmp_path, command="python trian.py", **{"train.py": "print('score: 1')\n"})
    done = ratchet("doctor", str(root))
    assert done.returncode == 1
    assert (
        f"BAD commands   [run] command `python trian.py`: no file trian.py in {root}"
        " — fix it in ratchet.toml"
    ) in done.stdout


def test_doctor_reports_a_tag_whose_baseline_failed(tmp_path: Path) -> None:
    crash = {"train.py": "raise SystemExit('no data')\n"}
    root = _study(tmp_path, command="python train.py", **crash)
    failed = ratchet("run", str(root), "--tag", "first", "--max-experiments", "0")
    assert failed.returncode == 1
    done = ratchet("doctor", str(root))
    assert done.returncode == 1
    assert "ok  commands   `python train.py` found" in done.stdout
    assert (
        "BAD baseline   tag first: the baseline (#1) ended with crash: run phase exited with"
        " code 1: no data — fix the study (`ratchet show 1 --log`)"
    ) in done.stdout


def test_doctor_checks_the_llm_endpoint_named_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)  # configured for the offline mutator
    for name in ("RATCHET_MODEL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-doctor")
    with ScriptedLLM([Answer("unused")], model="tiny") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        up = ratchet("doctor", str(root), "--proposer", "llm", "--model", "tiny")
        plain = ratchet("doctor", str(root))
    assert up.returncode == 0, up.stdout
    assert f"ok  proposer   llm: openai model tiny at {server.url}/v1 answers" in up.stdout
    assert server.paths == ["/v1/models"]  # asked once, by the first doctor only
    assert "ok  proposer   mutate" in plain.stdout
    down = ratchet("doctor", str(root), "--proposer", "llm", "--model", "tiny")
    assert down.returncode == 1
    assert f"BAD proposer   openai endpoint {server.url}/v1 does not answer" in down.stdout
    assert "sk-test-doctor" not in up.stdout + down.stdout
