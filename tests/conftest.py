"""Shared fixtures: real git repositories holding small, fast studies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

PYTHON = sys.executable

# A study whose run phase is a shell `cat`: the metric is whatever value.txt says.
FAST_TOML = """\
[study]
name = "fast"
program = "program.md"

[files]
editable = ["value.txt"]
protected = ["check.sh"]

[run]
command = "cat value.txt"
budget = 10
grace = 1
sandbox = "process"  # its candidates write to pytest's tmp_path: bwrap's /tmp is private

[metric]
name = "score"
goal = "minimize"

[decision]
rule = "strict"

[proposer]
kind = "replay"
"""


@pytest.fixture(autouse=True)
def _git_identity(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests never depend on (or change) the machine's git configuration."""
    home = tmp_path_factory.mktemp("home")
    config = home / ".gitconfig"
    config.write_text(
        "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("RATCHET_RAISE_ERRORS", "")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A git repository at ``root`` with ``files`` committed on main."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def fast_study(tmp_path: Path) -> Path:
    """The `cat value.txt` study, committed, baseline score 5."""
    return make_repo(
        tmp_path / "study",
        {
            "ratchet.toml": FAST_TOML,
            "program.md": "Lower the score.\n",
            "value.txt": "score: 5\n",
            "check.sh": "echo protected\n",
        },
    )


@pytest.fixture
def write_replay(tmp_path: Path) -> Callable[[list[dict]], Path]:
    """Write proposals to a JSONL file and return its path."""
    import json

    def _write(proposals: list[dict]) -> Path:
        path = tmp_path / "proposals.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in proposals))
        return path

    return _write


def ratchet(*args: str, cwd: Path | None = None, **kw: object) -> subprocess.CompletedProcess:
    """Run the real `ratchet` command in a subprocess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [PYTHON, "-m", "ratchet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        **kw,
    )
