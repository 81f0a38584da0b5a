"""What a candidate leaves in its worktree can never block the tag.

Two leftovers, at ``process`` and ``bwrap``:

- a directory chain 2,000 deep (``shutil.rmtree`` raised ``RecursionError``
  on it: an internal error at the next experiment and at every resume): it is
  removed like any other untracked file;
- a file marked immutable (``chattr +i``), which a candidate running as root
  at ``process`` level can make and nobody can delete until the flag is
  cleared (the run ended with exit 2, at every resume). The worktree is moved
  to ``.ratchet/abandoned/`` with a note saying why, a fresh one takes its
  place, the experiments keep their rows, the run goes on, and ``ratchet
  doctor`` reports the leftover with the command that removes it. Under
  ``bwrap`` the candidate's root is not root on the host filesystem, so the
  flag cannot be set and there is nothing to abandon.

The same leftovers planted between two runs of a tag (the resume path) are
handled the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, ratchet

from ratchet.removal import remove_tree

from .conftest import Hostile, assert_intact, attack, build, needs_bwrap, run_attacks

DEPTH = 2000
DEEP = (
    "import os\n"
    "os.mkdir('deep')\n"
    "os.chdir('deep')\n"
    f"for _ in range({DEPTH}):\n"
    "    os.mkdir('d')\n"
    "    os.chdir('d')\n"
    "with open('f', 'w') as out:\n"
    "    out.write('x')\n"
    "print('score: 4.9')\n"
)
IMMUTABLE = (
    "import os, subprocess\n"
    "os.makedirs('stuck', exist_ok=True)\n"
    "with open('stuck/f', 'w') as out:\n"
    "    out.write('x')\n"
    "subprocess.run(['chattr', '+i', 'stuck/f'])\n"
    "print('score: 4.8')\n"
)
ATTACKS = [attack("deep directory chain", DEEP), attack("immutable file", IMMUTABLE)]


def _can_set_immutable(where: Path) -> bool:
    """Whether this user can set ``chattr +i`` here (root on a filesystem that has it)."""
    probe = where / "immutable-probe"
    probe.write_text("x")
    done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, check=False)
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True, check=False)
    probe.unlink()
    return done.returncode == 0


def _tidy(root: Path) -> None:
    """Clear the flag a candidate set and delete what it left, even when a test failed:
    pytest's own cleanup of old temporary directories recurses, and a chain 2,000 deep
    would fail it in a later session."""
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        remove_tree(root)


@pytest.fixture(scope="module", params=["process", pytest.param("bwrap", marks=needs_bwrap)])
def attacked(
    request: pytest.FixtureRequest, module_git: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hostile]:
    tmp = tmp_path_factory.mktemp(f"cleanup-{request.param}")
    study = build(tmp, sandbox=request.param)
    try:
        yield run_attacks(study, ATTACKS)
    finally:
        _tidy(tmp)


def _abandoned(study: Hostile) -> list[Path]:
    where = study.root / ".ratchet" / "abandoned"
    return sorted(p for p in where.iterdir() if p.suffix != ".reason") if where.is_dir() else []


def test_the_run_goes_on_after_both_leftovers(attacked: Hostile) -> None:
    assert attacked.row("deep directory chain")["status"] == "keep"
    assert attacked.row("immutable file")["status"] == "keep"
    assert_intact(attacked)
    worktree = attacked.root / ".ratchet" / "worktrees" / "main"
    assert not (worktree / "deep").exists() and not (worktree / "stuck").exists()
    listed = git(attacked.root, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 2 and "prunable" not in listed, listed


def test_an_immutable_leftover_is_abandoned_and_reported(attacked: Hostile) -> None:
    moved = _abandoned(attacked)
    if attacked.level == "bwrap":  # the candidate cannot set the flag on the host's files
        assert moved == []
        return
    if not _can_set_immutable(attacked.tmp):
        pytest.skip("chattr +i needs root on a filesystem with file attributes")
    [where] = moved
    assert (where / "stuck" / "f").is_file()
    reason = where.with_name(where.name + ".reason").read_text()
    assert "stuck/f: Operation not permitted" in reason
    assert f"moved it to {where}" in attacked.done.stdout.replace("\n", "")
    _doctor_reports_then_clears(attacked, where)


def _doctor_reports_then_clears(study: Hostile, where: Path) -> None:
    """``doctor`` names the leftover and the command; after that command, it is gone."""
    done = ratchet("doctor", str(study.root))
    assert done.returncode == 1, done.stdout
    [line] = [row for row in done.stdout.splitlines() if "leftovers" in row]
    assert line.startswith("BAD leftovers") and str(where) in line
    command = re.search(r"`(chattr -R -i -a .*? && rm -rf .*?)`", done.stdout)
    assert command is not None, done.stdout
    subprocess.run(["bash", "-c", command.group(1)], check=True)
    again = ratchet("doctor", str(study.root))
    assert "leftovers" not in again.stdout and not where.exists(), again.stdout


def _plant_deep(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(DEPTH):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)


def test_leftovers_planted_between_runs_do_not_block_a_resume(attacked: Hostile) -> None:
    if attacked.level == "bwrap":
        pytest.skip("the resume path does not depend on the level")
    worktree = attacked.root / ".ratchet" / "worktrees" / "main"
    (worktree / "planted-deep").mkdir()
    _plant_deep(worktree / "planted-deep")
    immutable = _can_set_immutable(attacked.tmp)
    if immutable:
        (worktree / "planted-stuck").mkdir()
        (worktree / "planted-stuck" / "f").write_text("x")
        subprocess.run(["chattr", "+i", str(worktree / "planted-stuck" / "f")], check=True)
    before = _abandoned(attacked)
    replay = attacked.tmp / "proposals.jsonl"
    args = ["--proposer", "replay", "--replay", str(replay), "--max-experiments", "0"]
    done = ratchet("run", str(attacked.root), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (worktree / "planted-deep").exists() and not (worktree / "planted-stuck").exists()
    rows = json.loads(ratchet("log", str(attacked.root), "--json").stdout)
    assert [r["status"] for r in rows] == [r["status"] for r in attacked.rows]
    assert len(_abandoned(attacked)) == len(before) + immutable
