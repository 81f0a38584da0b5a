"""A candidate that kills the process supervising it, at both levels.

The attack (issue 10, case 5): a double-forked daemon waits until it is
reparented to the shepherd (the runner's supervising process, a child
subreaper), SIGKILLs it, keeps the output pipe open, and for a minute
rewrites ``attack.py`` in its worktree so that later experiments print a
forged score. Before the fix, ``ratchet run`` hung on the open pipe, then
exited 1 ("supervising process died without a report"), and the daemon
outlived its experiment.

What must hold: the experiment is a ``crash`` whose reason says what
happened, every process it started is dead (Ratchet kills the phase's
cgroup, or, without one, the orphans the shepherd left to it as a subreaper
of last resort), and the loop goes on: the benign proposal after it is kept
with its own score. Under bwrap the daemon cannot even see its supervisor
(its own PID namespace), so the attack fails and the candidate is judged as
usual.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from ratchet.execute import RunSpec, cgroup, run_command
from ratchet.execute.proctree import children
from ratchet.execute.sandbox import SANDBOX_UID, Sandbox, require_bwrap

from .conftest import Hostile, assert_intact, attack, build, needs_bwrap, run_attacks, survivors

KILL_THE_SUPERVISOR = attack(
    "kill the supervisor and forge later scores",
    "import os\nimport signal\nimport sys\nimport time\n"
    "flag = f'/tmp/{sys.argv[1]}-killed'\n"
    "child = os.fork()\n"
    "if child == 0:\n"
    "    os.setsid()\n"
    "    middle = os.getpid()\n"
    "    if os.fork() == 0:\n"
    "        while os.getppid() == middle:  # reparented once the middle process exits\n"
    "            time.sleep(0.01)\n"
    "        supervisor = os.getppid()\n"
    "        try:\n"
    "            os.kill(supervisor, signal.SIGKILL)\n"
    "            killed = int(supervisor != 1)  # pid 1: the sandbox's own init\n"
    "        except OSError:\n"
    "            killed = 0\n"
    "        with open(flag + '.tmp', 'w') as out:\n"
    "            out.write(str(killed))\n"
    "        os.replace(flag + '.tmp', flag)\n"
    "        end = time.time() + 60\n"
    "        while time.time() < end:  # stdout stays open; later candidates get a forged score\n"
    "            with open('attack.py', 'w') as out:\n"
    "                out.write('print(\"score: -100\")\\n')\n"
    "            time.sleep(0.05)\n"
    "    os._exit(0)\n"
    "os.waitpid(child, 0)\n"
    "for _ in range(500):\n"
    "    if os.path.exists(flag):\n"
    "        break\n"
    "    time.sleep(0.01)\n"
    "with open(flag) as found:\n"
    "    print('killed:', found.read())\n"
    "print('score: 5', flush=True)\n"
    "time.sleep(0.5)\n",
)


def _attacked(tmp: pytest.TempPathFactory, level: str) -> Hostile:
    study = build(tmp.mktemp(level), sandbox=level, budget=20)
    return run_attacks(study, [KILL_THE_SUPERVISOR])


@pytest.fixture(scope="module")
def process_level(module_git: None, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    return _attacked(tmp_path_factory, "process")


@pytest.fixture(scope="module")
def bwrap_level(module_git: None, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    return _attacked(tmp_path_factory, "bwrap")


def test_killing_the_supervisor_is_a_crash_and_the_loop_goes_on(process_level: Hostile) -> None:
    row = process_level.row("kill the supervisor and forge later scores")
    assert (row["status"], row["reason"]) == (
        "crash",
        "run phase: the process supervising it was killed; every process it started was killed too",
    )
    assert survivors(process_level.marker) == []
    assert_intact(process_level)  # the benign candidate after it is kept with its own score 4


@needs_bwrap
def test_under_bwrap_the_supervisor_is_out_of_reach(bwrap_level: Hostile) -> None:
    row = bwrap_level.row("kill the supervisor and forge later scores")
    assert (row["status"], row["reason"]) == ("discard", "5 does not beat the incumbent's 5")
    assert row["extras"] == {"killed": 0.0}
    assert survivors(bwrap_level.marker) == []
    assert_intact(bwrap_level)


# --- the runner alone: with the phase's cgroup, and with the subreaper of last resort ---

HOLDER = (
    "import os, signal, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    middle = os.getpid()\n"
    "    if os.fork() == 0:\n"
    "        while os.getppid() == middle:\n"
    "            time.sleep(0.01)\n"
    "        os.kill(os.getppid(), signal.SIGKILL)  # the supervisor, a subreaper\n"
    "        with open(sys.argv[1] + '.tmp', 'w') as out:\n"
    "            out.write(str(os.getpid()))\n"
    "        os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "        time.sleep(120)  # stdout, inherited, stays open\n"
    "    os._exit(0)\n"
    "time.sleep(120)\n"
)


def _gone(pid: int, timeout: float = 5) -> bool:
    """Whether ``pid`` is dead (or a zombie) within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("mechanism", ["cgroup", "subreaper"])
def test_the_runner_kills_the_tree_when_its_supervisor_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mechanism: str
) -> None:
    if mechanism == "cgroup" and not cgroup.available():
        pytest.skip("no cgroup v2 that Ratchet may create groups in")
    if mechanism == "subreaper":
        monkeypatch.setattr(cgroup, "create", lambda: None)
    (tmp_path / "holder.py").write_text(HOLDER)
    pidfile = tmp_path / "daemon.pid"
    spec = RunSpec(
        command=f"{sys.executable} holder.py {pidfile}",
        cwd=tmp_path,
        env=dict(os.environ),
        budget=60,
        grace=1,
        log_path=tmp_path / "run.log",
        sandbox=Sandbox("process"),
    )
    start = time.monotonic()
    result = run_command(spec)
    assert result.lost == (
        "the process supervising it was killed; every process it started was killed too"
    )
    assert time.monotonic() - start < 30, "waited for the daemon instead of killing it"
    assert _gone(int(pidfile.read_text()))


@needs_bwrap
def test_under_bwrap_the_sandbox_dies_with_a_killed_supervisor(tmp_path: Path) -> None:
    """No cgroup at this level: bwrap's PID namespace dies with its init, which dies with it."""
    marker = f"ratchet-bwrap-daemon-{uuid.uuid4().hex[:12]}"
    sleeper = f"sh -c 'sleep 300; :' {marker}"  # /bin only: the venv may be out of reach
    root = os.geteuid() == 0
    sandbox = Sandbox(
        "bwrap",
        writable=(tmp_path,),
        bwrap=require_bwrap(),
        drop_caps=root,
        user=SANDBOX_UID if root else None,
        setpriv=shutil.which("setpriv") or "setpriv",
    )
    command = f"(setsid {sleeper} &); echo ready; {sleeper}"
    log = tmp_path / "run.log"
    spec = RunSpec(command, tmp_path, dict(os.environ), 60, 1, log, sandbox=sandbox)
    me = Path("/proc/self/cmdline").read_bytes()

    def kill_the_shepherd(line: str) -> None:
        if line == "ready":  # the shepherd is the child of this process that runs this program
            [shepherd] = [p for p in children(os.getpid()) if _cmdline(p) == me]
            os.kill(shepherd, signal.SIGKILL)

    start = time.monotonic()
    result = run_command(spec, kill_the_shepherd)
    assert result.lost == (
        "the process supervising it was killed; every process it started was killed too"
    )
    assert time.monotonic() - start < 30
    assert survivors(marker) == []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
