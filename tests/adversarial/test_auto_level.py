"""The default level, ``sandbox = "auto"``, and what bwrap adds when Ratchet runs as root.

``auto`` is the strongest level that works here: bwrap where bubblewrap
runs, else ``process`` with a warning at every run that says what it does
not stop; ``ratchet doctor`` says which. Under bwrap the user's home is an
empty directory for the candidate (Ratchet's Python stays reachable), and
when Ratchet is root the candidate runs as uid 65534 ("nobody"): it cannot
set the immutable flag that would block the worktree's cleanup, read
root-only files, or signal the sandbox's own init; it still writes its
worktree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_repo, ratchet

from .conftest import Hostile, assert_intact, attack, build, needs_bwrap, run_attacks

TOML = """\
[study]
name = "auto"

[files]
editable = ["value.txt"]

[run]
command = "cat value.txt"
budget = 10
grace = 1

[metric]
name = "score"

[proposer]
kind = "mutate"
"""

FELL_BACK = (
    'warning: sandbox = "auto" fell back to "process" here (sandbox = "bwrap" needs'
    " bubblewrap: apt-get install bubblewrap (or dnf install bubblewrap)): candidate code can"
    " still use the network, read and write your files (the repository, the ledger, ~/.ssh)"
    " and signal your other processes"
)


def _study(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "study", {"ratchet.toml": TOML, "program.md": "x\n", "value.txt": "score: 5\n"}
    )


def _without_bwrap(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has git and cat but no bubblewrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    return {**os.environ, "PATH": str(bin_dir)}


def _ratchet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ratchet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@needs_bwrap
def test_auto_is_the_default_and_resolves_to_bwrap_here(tmp_path: Path) -> None:
    study = _study(tmp_path)
    doctor = ratchet("doctor", str(study))
    assert "ok  sandbox    auto → bwrap: no network, read-only files" in doctor.stdout
    done = ratchet("run", str(study), "--max-experiments", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in done.stdout + done.stderr


def test_without_bubblewrap_auto_falls_back_to_process_and_warns_at_every_run(
    tmp_path: Path,
) -> None:
    study = _study(tmp_path)
    env = _without_bwrap(tmp_path)
    for _ in range(2):
        done = _ratchet("run", str(study), "--max-experiments", "0", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[0] == FELL_BACK
    doctor = _ratchet("doctor", str(study), env=env)
    assert "ok  sandbox    auto → process: resource limits; no bwrap:" in doctor.stdout
    assert _ratchet("status", str(study), env=env).stdout.count(FELL_BACK) == 1


# --- under bwrap: the home directory, and the unprivileged user when Ratchet is root --------


@pytest.fixture(scope="module")
def outside() -> Iterator[Path]:
    """A directory outside /tmp (the sandbox has a private /tmp) that others may enter."""
    root = Path(tempfile.mkdtemp(prefix="ratchet-auto-test-", dir="/var/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _probe(targets: list[str]) -> str:
    """Code that tries to read each target and prints what happened."""
    return (
        "seen = 0\n"
        f"for target in {targets!r}:\n"
        "    try:\n"
        "        with open(target, 'rb') as file:\n"
        "            file.read()\n"
        "        seen += 1\n"
        "        print('read', target)\n"
        "    except OSError as exc:\n"
        "        print('refused', target, exc.strerror)\n"
        "print('seen:', seen)\n"
        "print('score: 5')\n"
    )


IMMUTABLE = (
    "import fcntl, os, struct\n"
    "escaped = 0\n"
    "fd = os.open('attack.py', os.O_RDONLY)\n"
    "flags = struct.unpack('l', fcntl.ioctl(fd, 0x80086601, struct.pack('l', 0)))[0]\n"
    "try:\n"
    "    fcntl.ioctl(fd, 0x40086602, struct.pack('l', flags | 0x10))  # FS_IMMUTABLE_FL\n"
    "    escaped = 1\n"
    "    fcntl.ioctl(fd, 0x40086602, struct.pack('l', flags))\n"
    "except OSError as exc:\n"
    "    print('refused', exc.strerror)\n"
    "print('escaped:', escaped)\n"
    "print('score: 5')\n"
)

SIGNAL_INIT = (
    "import os, signal\n"
    "escaped = 0\n"
    "try:\n"
    "    os.kill(1, signal.SIGKILL)  # the sandbox's init, a process of root's\n"
    "    escaped = 1\n"
    "except OSError as exc:\n"
    "    print('refused', exc.strerror)\n"
    "print('escaped:', escaped)\n"
    "print('score: 5')\n"
)


@pytest.fixture(scope="module")
def sandboxed(
    module_git: None, tmp_path_factory: pytest.TempPathFactory, outside: Path
) -> Hostile:
    home = outside / "home"
    home.mkdir()
    (home / "credentials").write_text("home secret\n")
    private = outside / "root-only.txt"
    private.write_text("root only\n")
    private.chmod(0o600)
    study = build(tmp_path_factory.mktemp("auto"), sandbox="auto", budget=20)
    attacks = [
        attack("read the home directory", _probe([str(home / "credentials")])),
        attack(
            "who am I",
            "import os\nopen('mine.txt', 'w').write('x')  # its worktree is writable\n"
            "status = open('/proc/self/status').read().splitlines()\n"
            "caps = [int(line.split()[1], 16) for line in status if line.startswith('Cap')]\n"
            "print('uid:', os.getuid())\nprint('caps:', sum(caps))\nprint('score: 5')\n",
        ),
        attack("set the immutable flag", IMMUTABLE),
        attack("read root-only files", _probe([str(private), "/etc/shadow"])),
        attack("signal the sandbox's init", SIGNAL_INIT),
    ]
    return run_attacks(study, attacks, env={"HOME": str(home)})


def _extras(study: Hostile, description: str) -> dict[str, float]:
    row = study.row(description)
    assert (row["status"], row["reason"]) == ("discard", "5 does not beat the incumbent's 5"), row
    return row["extras"]


@needs_bwrap
def test_the_home_directory_is_not_visible(sandboxed: Hostile, outside: Path) -> None:
    assert _extras(sandboxed, "read the home directory") == {"seen": 0.0}
    refused = f"refused {outside / 'home' / 'credentials'} No such file or directory"
    assert refused in sandboxed.log_text("read the home directory")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="Ratchet runs as root only in this test")


@needs_bwrap
@needs_root
def test_as_root_the_candidate_runs_unprivileged_and_writes_its_worktree(
    sandboxed: Hostile,
) -> None:
    assert _extras(sandboxed, "who am I") == {"uid": 65534.0, "caps": 0.0}  # every set empty


@needs_bwrap
@needs_root
def test_as_root_the_candidate_cannot_set_the_immutable_flag(sandboxed: Hostile) -> None:
    assert _extras(sandboxed, "set the immutable flag") == {"escaped": 0.0}
    assert "refused Operation not permitted" in sandboxed.log_text("set the immutable flag")


@needs_bwrap
@needs_root
def test_as_root_the_candidate_cannot_read_root_only_files(
    sandboxed: Hostile, outside: Path
) -> None:
    assert _extras(sandboxed, "read root-only files") == {"seen": 0.0}
    log = sandboxed.log_text("read root-only files")
    assert f"refused {outside / 'root-only.txt'} Permission denied" in log
    assert "refused /etc/shadow Permission denied" in log


@needs_bwrap
@needs_root
def test_as_root_the_candidate_cannot_signal_the_sandboxs_init(sandboxed: Hostile) -> None:
    assert _extras(sandboxed, "signal the sandbox's init") == {"escaped": 0.0}
    assert "refused Operation not permitted" in sandboxed.log_text("signal the sandbox's init")


@needs_bwrap
def test_the_loop_went_on_and_the_checkout_is_intact(sandboxed: Hostile) -> None:
    assert_intact(sandboxed)
