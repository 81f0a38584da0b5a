"""Exit codes a script can rely on: 1 the study failed, 2 the user's error (one sentence),
70 a bug in ratchet, 141 the reader of the output went away."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import PYTHON, ratchet

from ratchet.cli import commands
from ratchet.cli.main import main


@pytest.fixture
def measured(fast_study: Path, write_replay) -> Path:
    """The fast study with its baseline in the ledger."""
    replay = write_replay([])
    base = ratchet("run", str(fast_study), "--max-experiments", "0", "--replay", str(replay))
    assert base.returncode == 0, base.stderr
    return fast_study


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["init", "/dev/null/x"], "cannot write into /dev/null/x: Not a directory"),
        (["init", "{file}"], "is a file, not a directory"),
        (["init", "{tmp}/x", "--from", "openevolve", "/dev/null"], "/dev/null"),
        (["report", "{study}", "--out", "/dev/null/x"], "cannot write into /dev/null/x"),
    ],
)
def test_a_path_the_user_cannot_use_is_one_sentence_and_exit_2(
    argv: list[str], said: str, measured: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where a crash file would go
    (tmp_path / "file").write_text("x\n")
    subs = {"{file}": str(tmp_path / "file"), "{study}": str(measured), "{tmp}": str(tmp_path)}
    for key, value in subs.items():
        argv = [a.replace(key, value) for a in argv]
    done = ratchet(*argv)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr and "internal error" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("ratchet-crash-*"))


@pytest.mark.parametrize("command", [["log", "--json"], ["log"], ["status"]])
def test_a_closed_pipe_ends_quietly_without_a_crash_file(
    measured: Path, tmp_path: Path, command: list[str]
) -> None:
    """``ratchet log --json | head -c 10``: the reader is gone before ratchet writes, whether
    the output is printed (buffered until exit) or drawn by rich (which exits 1 on its own)."""
    read, write = os.pipe()
    os.close(read)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    try:
        done = subprocess.run(
            [PYTHON, "-m", "ratchet", *command, str(measured)],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
            env={**env, "TMPDIR": str(tmp_path)},
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
    assert not list(tmp_path.glob("ratchet-crash-*"))


def test_a_bug_in_ratchet_has_its_own_exit_code_and_a_traceback_file(
    fast_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def broken(_args: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(commands, "cmd_status", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["status", str(fast_study)]) == 70
    err = capsys.readouterr().err
    assert "internal error ZeroDivisionError" in err and "bug in ratchet" in err
    (crash,) = tmp_path.glob("ratchet-crash-*.txt")
    assert "ZeroDivisionError" in crash.read_text()


def test_help_lists_the_exit_codes() -> None:
    done = ratchet("--help")
    codes = [line.split()[0] for line in done.stdout.split("exit codes:")[1].splitlines()[1:]]
    assert codes == ["0", "1", "2", "70", "130", "141"]
