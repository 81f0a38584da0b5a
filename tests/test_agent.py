"""The agent proposer with real subprocess "agents": small Python scripts run as the command."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import git, make_repo, ratchet

from ratchet.models import Context, Experiment
from ratchet.proposers.agent import DESCRIPTION_FILE, agent_prompt
from ratchet.study import load_study

# The run phase shows what the candidate sees: its files, and whether a key reached it.
AGENT_TOML = """\
[study]
name = "agentic"

[files]
editable = ["value.txt"]
protected = ["check.sh"]

[run]
command = "cat value.txt; ls -A; echo key=${{OPENAI_API_KEY:-none}}"
budget = 10
grace = 1

[metric]
name = "score"
goal = "minimize"

[decision]
rule = "strict"

[proposer]
kind = "agent"
agent_timeout = {timeout}
max_failures = {failures}
"""

# Agents: each reads the prompt, then does one thing in its working directory (the worktree).
GOOD = """\
import os, pathlib, sys
prompt = pathlib.Path(sys.argv[1]).read_text()
pathlib.Path(os.environ["SEEN"]).write_text(
    f"{os.getcwd()}\\n{os.environ.get('OPENAI_API_KEY', 'none')}\\n{prompt}"
)
value = pathlib.Path("value.txt")
n = int(value.read_text().split()[1])
value.write_text(f"score: {n - 2}\\n")
pathlib.Path("notes.tmp").write_text("scratch the candidate must never see\\n")
pathlib.Path(".ratchet-description").write_text(f"lower the score to {n - 2}\\nit is lower\\n")
print("done editing")
"""
TAMPER = """\
import pathlib
pathlib.Path("value.txt").write_text("score: 0\\n")
pathlib.Path("check.sh").write_text("echo hacked\\n")
"""
HANG = """\
import os, pathlib, subprocess, sys, time
child = subprocess.Popen(["sleep", "300"])
pathlib.Path(os.environ["PIDS"]).open("a").write(f"{os.getpid()} {child.pid}\\n")
time.sleep(300)
"""
DELETE = """\
import pathlib
pathlib.Path("value.txt").unlink()
"""
IDLE = """\
print("I looked around and changed nothing")
"""
FAIL = """\
import pathlib, sys
pathlib.Path("value.txt").write_text("score: 1\\n")
print("out of credits", file=sys.stderr)
sys.exit(3)
"""


def agent_study(
    tmp_path: Path,
    source: str,
    *,
    sub: str = "",
    timeout: float = 60,
    failures: int = 5,
    agent: str | None = None,
) -> Path:
    """A committed `cat value.txt` study (baseline 5) whose proposer runs ``source``."""
    script = tmp_path / "agent.py"
    script.write_text(source)
    toml = AGENT_TOML.format(timeout=timeout, failures=failures)
    toml += agent or f'agent = "command"\ncommand = "{sys.executable} {script} {{prompt_file}}"\n'
    files = {"ratchet.toml": toml, "program.md": "Lower the score.\n", "value.txt": "score: 5\n"}
    files["check.sh"] = "echo protected\n"
    repo = make_repo(tmp_path / "repo", {f"{sub}/{k}" if sub else k: v for k, v in files.items()})
    return repo / sub if sub else repo


def run(study: Path, *args: str) -> tuple[int, list[dict], str]:
    """`ratchet run`; returns (exit code, log rows, everything it printed)."""
    done = ratchet("run", str(study), *args)
    log = ratchet("log", str(study), "--json")
    rows = json.loads(log.stdout) if log.returncode == 0 else []
    return done.returncode, rows, done.stdout + done.stderr


@pytest.mark.parametrize("sub", ["", "lab/study"])
def test_a_good_agent_edit_is_measured_and_kept(
    tmp_path: Path, sub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = agent_study(tmp_path, GOOD, sub=sub)
    seen = tmp_path / "seen.txt"
    monkeypatch.setenv("SEEN", str(seen))
    code, rows, out = run(study, "--max-experiments", "2")
    assert code == 0, out
    assert [(r["status"], r["metric"]) for r in rows] == [
        ("baseline", 5.0),
        ("keep", 3.0),
        ("keep", 1.0),
    ]
    assert rows[1]["description"] == "lower the score to 3"
    assert rows[2]["description"] == "lower the score to 1"
    cwd, _key, prompt = seen.read_text().split("\n", 2)
    assert Path(cwd).resolve() == (study / ".ratchet" / "worktrees" / "main" / sub).resolve()
    assert "value.txt" in prompt and DESCRIPTION_FILE in prompt and "Lower the score." in prompt
    shown = ratchet("show", str(rows[2]["id"]), str(study), "--log").stdout
    assert "notes.tmp" not in shown and DESCRIPTION_FILE not in shown  # nothing else leaked
    assert git(study, "show", "ratchet/main:" + (f"{sub}/" if sub else "") + "value.txt") == (
        "score: 1"
    )


def test_the_agent_sees_its_key_and_the_candidate_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = agent_study(tmp_path, GOOD)
    seen = tmp_path / "seen.txt"
    monkeypatch.setenv("SEEN", str(seen))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-agent-only")
    code, rows, out = run(study, "--max-experiments", "1")
    assert code == 0, out
    assert seen.read_text().split("\n")[1] == "sk-agent-only"
    shown = ratchet("show", str(rows[1]["id"]), str(study), "--log").stdout
    assert "key=none" in shown and "sk-agent-only" not in shown


def test_an_agent_that_edits_a_protected_file_is_rejected(tmp_path: Path) -> None:
    study = agent_study(tmp_path, TAMPER)
    code, rows, out = run(study, "--max-experiments", "1")
    assert code == 0, out
    assert rows[1]["status"] == "rejected"
    assert rows[1]["reason"] == "policy: check.sh is protected (the evaluation must stay fixed)"
    assert git(study, "show", "ratchet/main:check.sh") == "echo protected"
    assert (study / "check.sh").read_text() == "echo protected\n"


def test_a_hanging_agent_is_killed_at_its_limit_and_the_run_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = agent_study(tmp_path, HANG, timeout=2, failures=2)
    pids = tmp_path / "pids.txt"
    monkeypatch.setenv("PIDS", str(pids))
    code, rows, out = run(study, "--max-experiments", "5")
    assert code == 0, out
    assert [r["status"] for r in rows] == ["baseline", "rejected", "rejected"]
    for r in rows[1:]:
        assert r["reason"].startswith("proposal: the command agent ran past its 2 s limit")
    assert "failed 2 times in a row" in out
    started = [int(p) for line in pids.read_text().splitlines() for p in line.split()]
    assert len(started) == 4
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in started), "the agent or its child outlived the limit"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[-1].startswith("Z"))


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (DELETE, "the command agent deleted the file value.txt"),
        (IDLE, "the command agent exited without changing any file"),
        (FAIL, "the command agent exited with 3: out of credits"),
    ],
)
def test_unusable_and_failed_sessions_are_rejected_rows(
    tmp_path: Path, source: str, reason: str
) -> None:
    study = agent_study(tmp_path, source, failures=2)
    code, rows, out = run(study, "--max-experiments", "3")
    assert code == 0, out
    assert rows[1]["status"] == "rejected"
    assert rows[1]["reason"].startswith(f"proposal: {reason}")
    assert len(rows) == 3  # two failed or unusable sessions in a row end the run
    assert (study / "value.txt").read_text() == "score: 5\n"


def test_a_missing_agent_binary_is_one_sentence_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = agent_study(tmp_path, GOOD, agent='agent = "claude"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "git")
    monkeypatch.setenv("PATH", str(bin_dir))  # git, and no claude
    done = ratchet("run", str(study))
    assert done.returncode == 2
    assert "the claude agent needs `claude` on PATH" in done.stderr
    assert "npm install -g @anthropic-ai/claude-code" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_command_agent_needs_the_prompt_placeholder(tmp_path: Path) -> None:
    study = agent_study(tmp_path, GOOD)
    config = study / "ratchet.toml"
    config.write_text(config.read_text().replace(" {prompt_file}", ""))
    git(study, "commit", "-qam", "no placeholder")
    done = ratchet("run", str(study))
    assert done.returncode == 2
    assert "needs a command that reads the prompt" in done.stderr


def test_the_prompt_names_the_files_the_rules_and_the_history(tmp_path: Path) -> None:
    study = load_study(agent_study(tmp_path, GOOD))
    best = Experiment(id=1, tag="main", parent=None, commit="c", status="baseline", metric=5.0)
    crash = Experiment(
        id=2, tag="main", parent="c", commit="d", status="crash", description="try zero",
        reason="run phase exited with code 1: boom\nmore",
    )  # fmt: skip
    context = Context(
        study_name="agentic", tag="main", program="Lower the score.\n",
        files={"value.txt": "score: 5\n"}, parent_commit="c", metric_name="score",
        goal="minimize", history=[best, crash], incumbent=best, workdir=str(study.root),
        journal="- zero crashes", last_failure_log="Traceback: boom",
    )  # fmt: skip
    prompt = agent_prompt(context, study)
    assert "ONE focused change to these files only: value.txt" in prompt
    assert "check.sh" in prompt and "Do not run the experiment" in prompt
    assert "Current best: 5 (experiment #1)" in prompt
    assert "#2 crash - try zero (run phase exited with code 1: boom)" in prompt
    assert "- zero crashes" in prompt and "Traceback: boom" in prompt
    assert "## Research program\nLower the score." in prompt
