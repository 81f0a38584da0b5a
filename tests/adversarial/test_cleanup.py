"""What a candidate leaves in its worktree can never block the tag.

Three leftovers, at ``process`` and ``bwrap``:

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
  flag cannot be set and there is nothing to abandon;
- the worktree's own directory made immutable, so it can be neither cleaned
  nor moved: it stays where it is, noted for ``doctor``, and a spare
  worktree (``main+1``) is used from then on.

The same leftovers planted between two runs of a tag (the resume path) are
handled the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import git, ratchet

from ratchet.removal import remove_tree

from .conftest import BENIGN, Hostile, assert_intact, attack, build, needs_bwrap, run_attacks

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
LOCKED = (  # a tracked file, and a score that is discarded: the reset must rewrite it
    "import subprocess\n"
    "subprocess.run(['chattr', '+i', 'attack.py'])\n"
    "print('score: 5.5')\n"
)
IMMOVABLE = (
    "import subprocess\n"
    "with open('junk', 'w') as out:\n"
    "    out.write('x')\n"
    "subprocess.run(['chattr', '+i', '.'])\n"
    "print('score: 4.7')\n"
)
ATTACKS = [
    attack("deep directory chain", DEEP),
    attack("immutable file", IMMUTABLE),
    attack("immutable tracked file", LOCKED),
    attack("immutable worktree", IMMOVABLE),
]
ROWS = [a["description"] for a in ATTACKS]


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


def _immutable_here(study: Hostile) -> bool:
    """Whether the candidates of this study could set the flag (root, process level)."""
    return study.level == "process" and _can_set_immutable(study.tmp)


def test_the_run_goes_on_after_every_leftover(attacked: Hostile) -> None:
    statuses = [attacked.row(d)["status"] for d in ROWS]
    assert statuses == ["keep", "keep", "discard", "keep"]
    assert_intact(attacked)
    worktrees = attacked.root / ".ratchet" / "worktrees"
    live = worktrees / ("main+1" if _immutable_here(attacked) else "main")
    files = [".git", "attack.py", "check.sh", "program.md", "ratchet.toml"]
    assert sorted(p.name for p in live.iterdir()) == files
    listed = git(attacked.root, "worktree", "list", "--porcelain")
    assert "prunable" not in listed, listed
    assert listed.count("worktree ") == (3 if _immutable_here(attacked) else 2), listed


def test_leftovers_are_abandoned_and_doctor_names_them(attacked: Hostile) -> None:
    if not _immutable_here(attacked):  # under bwrap the flag cannot be set on host files
        assert _abandoned(attacked) == []
        assert not (attacked.root / ".ratchet" / "worktrees" / "main+1").exists()
        return
    [tracked, file] = sorted(_abandoned(attacked), key=lambda p: (p / "stuck").exists())
    assert (file / "stuck" / "f").is_file() and (tracked / "attack.py").is_file()
    reason = file.with_name(file.name + ".reason").read_text()
    assert "stuck/f: Operation not permitted" in reason
    reason = tracked.with_name(tracked.name + ".reason").read_text()
    assert "unable to unlink old 'attack.py': Operation not permitted" in reason
    printed = attacked.done.stdout.replace("\n", "")
    assert f"moved it to {file}" in printed and f"moved it to {tracked}" in printed
    assert "trying a spare worktree" in printed
    in_place = attacked.root / ".ratchet" / "worktrees" / "main"
    assert _doctor_until_clean(attacked) == sorted(map(str, [file, tracked, in_place]))
    assert not file.exists() and not tracked.exists() and not in_place.exists()


def _doctor_until_clean(study: Hostile) -> list[str]:
    """Run ``doctor``, then the command it names, until it reports no leftover."""
    named = []
    for _ in range(4):
        done = ratchet("doctor", str(study.root))
        lines = [row for row in done.stdout.splitlines() if "leftovers" in row]
        if not lines:
            return sorted(named)
        assert done.returncode == 1 and lines[0].startswith("BAD leftovers"), done.stdout
        found = re.search(r"worktree (\S+).*`(chattr -R -i -a .*? && rm -rf .*?)`", lines[0])
        assert found is not None, lines[0]
        named.append(found.group(1).rstrip(":"))
        subprocess.run(["bash", "-c", found.group(2)], check=True)
    raise AssertionError(f"doctor still reports leftovers: {named}")


def _plant_deep(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(DEPTH):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)


def _plant_immutable(worktree: Path) -> None:
    (worktree / "stuck").mkdir()
    (worktree / "stuck" / "f").write_text("x")
    subprocess.run(["chattr", "+i", str(worktree / "stuck" / "f")], check=True)


def _plant_immovable(worktree: Path) -> None:
    (worktree / "junk").write_text("x")
    subprocess.run(["chattr", "+i", str(worktree)], check=True)


@pytest.mark.parametrize("level", ["process", pytest.param("bwrap", marks=needs_bwrap)])
@pytest.mark.parametrize(
    ("plant", "abandoned", "live"),
    [(_plant_deep, 0, "main"), (_plant_immutable, 1, "main"), (_plant_immovable, 0, "main+1")],
    ids=["deep", "immutable file", "immutable worktree"],
)
def test_leftovers_planted_between_runs_do_not_block_a_resume(
    module_git: None,
    tmp_path: Path,
    level: str,
    plant: Callable[[Path], None],
    abandoned: int,
    live: str,
) -> None:
    """Planted by hand (as root) after the baseline; the resumed run measures a candidate
    in the worktree it ends up with, and every later resume starts too."""
    if plant is not _plant_deep and not _can_set_immutable(tmp_path):
        pytest.skip("chattr +i needs root on a filesystem with file attributes")
    study = build(tmp_path, sandbox=level)
    replay = tmp_path / "proposals.jsonl"
    replay.write_text(json.dumps(BENIGN) + "\n")
    args = ["--proposer", "replay", "--replay", str(replay), "--max-experiments"]
    try:
        assert ratchet("run", str(study.root), *args, "0").returncode == 0
        worktrees = study.root / ".ratchet" / "worktrees"
        if plant is _plant_deep:
            (worktrees / "main" / "deep").mkdir()
        plant(worktrees / "main" / "deep" if plant is _plant_deep else worktrees / "main")
        done = ratchet("run", str(study.root), *args, "1")
        assert done.returncode == 0, done.stdout + done.stderr
        rows = json.loads(ratchet("log", str(study.root), "--json").stdout)
        assert [(r["status"], r["metric"]) for r in rows] == [("baseline", 5.0), ("keep", 4.0)]
        assert not (worktrees / live / "deep").exists() and not (worktrees / live / "junk").exists()
        assert (worktrees / live / "attack.py").read_text() == BENIGN["edits"]["attack.py"]
        assert len(_abandoned(study)) == abandoned
        again = ratchet("run", str(study.root), *args, "0")  # and every later resume
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        _tidy(tmp_path)
