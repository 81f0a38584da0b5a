"""Hostile run phases at the default level, ``sandbox = "process"``.

Own session, the whole tree killed at budget + grace, secrets scrubbed from
the environment, output capped, and limits on file size, memory and the
number of processes. The study: grace 1 s, log_cap_mb = 1, max_processes =
64, max_file_mb = 5, max_memory_mb = 500; budget 20 s, and 3 s for the
attack that sleeps past it (a study of its own, so the others are not rushed).

What this level does not stop is asserted too: a candidate can reach the
network (a listener on 127.0.0.1 gets its connection) and write any file the
user can, the repository's ``.git`` included; ``sandbox = "bwrap"`` is the
level for that (see test_bwrap_level.py).
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from .conftest import (
    Hostile,
    accepted,
    assert_intact,
    attack,
    build,
    pids_in,
    run_attacks,
    survivors,
)

SECRETS = {
    "OPENAI_API_KEY": f"sk-{uuid.uuid4().hex}",
    "HF_TOKEN": f"hf_{uuid.uuid4().hex}",
    "github_token": f"ghp_{uuid.uuid4().hex}",
    "AWS_SECRET_ACCESS_KEY": uuid.uuid4().hex,
    "DB_PASSWORD": uuid.uuid4().hex,
}
VISIBLE = ("RATCHET_TEST_VISIBLE", f"plain-{uuid.uuid4().hex}")


def _write_pid(pids: Path, name: str) -> str:
    """Code that records the current process's pid in ``pids/name.pid``, atomically."""
    path = pids / f"{name}.pid"
    return (
        f"with open({str(path) + '.tmp'!r}, 'w') as f:\n"
        "    f.write(str(os.getpid()))\n"
        f"os.replace({str(path) + '.tmp'!r}, {str(path)!r})\n"
    )


def _attacks(repo: Path, pids: Path, port: int) -> list[dict]:
    return [
        attack(
            "read API keys from the environment",
            "import os\n"
            "for name, value in sorted(os.environ.items()):\n"
            "    print(f'env {name}={value}')\n"
            "print('score: 5')\n",
        ),
        attack(
            "fork bomb",
            "import os\nimport time\n"
            "for _ in range(9):  # 2**9 = 512 processes, each forking in turn\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n"
            "time.sleep(120)\n"
            "print('score: 5')\n",
        ),
        attack(
            "200 MB of output",
            "import sys\n"
            "chunk = (b'step ' + b'x' * 1018 + b'\\n') * 1024  # 1 MiB of 1 KiB lines\n"
            "for _ in range(200):\n"
            "    sys.stdout.buffer.write(chunk)\n"
            "sys.stdout.buffer.flush()\n"
            "print('score: 5')\n",
        ),
        attack(
            "double-forked daemon",
            "import os\nimport time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        null = os.open(os.devnull, os.O_RDWR)\n"
            "        for fd in (0, 1, 2):\n"
            "            os.dup2(null, fd)\n"
            + "".join(f"        {line}\n" for line in _write_pid(pids, "daemon").splitlines())
            + "        time.sleep(300)\n"
            "    os._exit(0)\n"
            "os.wait()\n"
            f"while not os.path.exists({str(pids / 'daemon.pid')!r}):\n"
            "    time.sleep(0.01)\n"
            "print('score: 5')\n",
        ),
        attack(
            "fill the disk past the file-size limit",
            "with open('big.bin', 'wb') as out:\n"
            "    for _ in range(50):\n"
            "        out.write(bytes(1_000_000))\n"
            "print('score: 5')\n",
        ),
        attack(
            "allocate 2 GB past the memory limit",
            "blob = bytearray(2_000_000_000)\nprint('score: 5')\n",
        ),
        attack(
            "connect to a listener on 127.0.0.1",
            "import socket\n"
            f"conn = socket.create_connection(('127.0.0.1', {port}), timeout=10)\n"
            "conn.sendall(b'hello from the candidate')\n"
            "conn.close()\n"
            "print('connected: 1')\n"
            "print('score: 5')\n",
        ),
        attack(
            "write into the user's .git at run time",
            f"with open({str(repo / '.git' / 'ratchet-probe')!r}, 'w') as out:\n"
            "    out.write('written by a candidate')\n"
            "print('score: 5')\n",
        ),
        attack(
            "point the worktree's .git elsewhere",
            "with open('.git', 'w') as out:\n"
            "    out.write('gitdir: /nonexistent\\n')\n"
            "print('score: 5')\n",
        ),
    ]


def _stubborn(pids: Path) -> dict:
    return attack(
        "ignore SIGTERM and sleep past the budget",
        "import os\nimport signal\nimport time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        + _write_pid(pids, "sigterm")
        + "print('score: 5', flush=True)\n"
        "time.sleep(300)\n",
    )


@pytest.fixture(scope="module")
def attacked(
    module_git: None, tmp_path_factory: pytest.TempPathFactory, listener: socket.socket
) -> Hostile:
    # A generous budget: 200 MB through a pipe takes seconds on a loaded machine.
    study = build(tmp_path_factory.mktemp("process"), sandbox="process", budget=20)
    attacks = _attacks(study.root, study.tmp / "pids", listener.getsockname()[1])
    return run_attacks(study, attacks, env={**SECRETS, VISIBLE[0]: VISIBLE[1]})


@pytest.fixture(scope="module")
def stubborn(module_git: None, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    """A study of its own, so that budget + grace is short (3 s + 1 s)."""
    study = build(tmp_path_factory.mktemp("stubborn"), sandbox="process", budget=3)
    return run_attacks(study, [_stubborn(study.tmp / "pids")])


def _outcome(study: Hostile, description: str) -> tuple[str, str]:
    row = study.row(description)
    return row["status"], row["reason"]


def test_api_keys_are_absent(attacked: Hostile) -> None:
    assert _outcome(attacked, "read API keys from the environment") == (
        "discard",
        "5 does not beat the incumbent's 5",
    )
    log = attacked.log_text("read API keys from the environment")
    assert f"env {VISIBLE[0]}={VISIBLE[1]}" in log, "the attack did not print the environment"
    for name, secret in SECRETS.items():
        assert secret not in log and f"env {name}=" not in log, name


def test_a_fork_bomb_is_stopped_by_the_process_limit(attacked: Hostile) -> None:
    assert _outcome(attacked, "fork bomb") == (
        "crash",
        "run phase exceeded the 64-process limit ([run] max_processes) and was killed"
        " — a fork bomb?",
    )
    assert survivors(attacked.marker) == []


def test_200_mb_of_output_is_capped(attacked: Hostile) -> None:
    row = attacked.row("200 MB of output")
    assert (row["status"], row["metric"]) == ("discard", 5.0)
    log = attacked.root / ".ratchet" / "logs" / str(row["id"]) / "run.log"
    assert 400_000 <= log.stat().st_size <= 1_000_000  # the experiment's cap, for all its logs
    assert b"bytes omitted" in log.read_bytes() and b"209715209 bytes" in log.read_bytes()
    assert log.read_bytes().endswith(b"x" * 1018 + b"\nscore: 5\n")


def test_ignoring_sigterm_is_killed_at_budget_plus_grace(stubborn: Hostile) -> None:
    row = stubborn.row("ignore SIGTERM and sleep past the budget")
    assert (row["status"], row["reason"]) == (
        "timeout",
        "run phase ran past its 3 s budget and was killed",
    )
    assert row["duration_s"] < 60, "not killed: it slept on"
    assert survivors(stubborn.marker, pids_in(stubborn.tmp / "pids"), timeout=0) == []
    assert_intact(stubborn)


def test_a_double_forked_daemon_is_killed(attacked: Hostile) -> None:
    assert _outcome(attacked, "double-forked daemon") == (
        "discard",
        "5 does not beat the incumbent's 5",
    )
    daemon = int((attacked.tmp / "pids" / "daemon.pid").read_text())
    assert survivors(attacked.marker, [daemon]) == []


def test_a_file_past_the_size_limit_fails(attacked: Hostile) -> None:
    status, reason = _outcome(attacked, "fill the disk past the file-size limit")
    assert status == "crash"
    assert reason == (
        "run phase exited with code 1: OSError: [Errno 27] File too large"
        " (hit the 5 MB file size limit ([run] max_file_mb))"
    )


def test_memory_past_the_limit_fails(attacked: Hostile) -> None:
    assert _outcome(attacked, "allocate 2 GB past the memory limit") == (
        "crash",
        "run phase exited with code 1: MemoryError"
        " (probably hit the 500 MB memory limit ([run] max_memory_mb))",
    )


def test_the_process_level_does_not_isolate_the_network(
    attacked: Hostile, listener: socket.socket
) -> None:
    """A documented limit: only ``sandbox = "bwrap"`` takes the network away."""
    row = attacked.row("connect to a listener on 127.0.0.1")
    assert (row["status"], row["extras"].get("connected")) == ("discard", 1.0)
    assert accepted(listener) == b"hello from the candidate"


def test_the_process_level_does_not_protect_the_users_files(attacked: Hostile) -> None:
    """A documented limit: a candidate runs as the user; only bwrap hides the repository."""
    row = attacked.row("write into the user's .git at run time")
    assert row["status"] == "discard"
    assert (attacked.root / ".git" / "ratchet-probe").read_text() == "written by a candidate"


def test_a_rewritten_worktree_pointer_misleads_no_git_command(attacked: Hostile) -> None:
    """Ratchet names the worktree's git directory itself; the next candidate still commits."""
    assert _outcome(attacked, "point the worktree's .git elsewhere") == (
        "discard",
        "5 does not beat the incumbent's 5",
    )
    assert attacked.row("benign")["status"] == "keep"


def test_the_loop_went_on_and_the_checkout_is_intact(attacked: Hostile) -> None:
    assert_intact(attacked)
