"""Hostile run phases under ``sandbox = "bwrap"``: what the process level cannot stop.

No network, a read-only filesystem except the candidate's worktree and a
private /tmp, the user's repository (its files, ``.git``, the ledger)
hidden, protected files read-only, ``[run] hide`` paths empty. Each attack
tries, counts what worked (``escaped: N``, ``seen: N``, ``connected: N``,
read back as extra metrics) and undoes anything that did work, then prints
the baseline score; the tests check the counts and, from outside, that
nothing was touched.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from .conftest import (
    Hostile,
    accepted,
    assert_intact,
    attack,
    build,
    needs_bwrap,
    run_attacks,
    survivors,
)

pytestmark = needs_bwrap

VICTIM = "the user's file outside the study\n"
HELDOUT = "HELDOUT-VALIDATION-SPLIT\n"


def _try_writes(targets: list[str], mode: str = "a", undo: bool = False) -> str:
    """Code that tries to open each target for writing and counts successes.

    Appending nothing changes no file; ``undo`` deletes a file the write created.
    """
    return (
        "import os\n"
        "escaped = 0\n"
        f"for target in {targets!r}:\n"
        "    try:\n"
        f"        with open(target, {mode!r}) as out:\n"
        "            out.write('')\n"
        "        escaped += 1\n"
        + ("        os.unlink(target)\n" if undo else "")
        + "    except OSError as exc:\n"
        "        print('refused', target, exc)\n"
        "print('escaped:', escaped)\n"
        "print('score: 5')\n"
    )


def _attacks(study: Hostile, port: int) -> list[dict]:
    repo, victim = study.root, study.tmp / "victim.txt"
    probe = Path(sys.executable).parent / f"ratchet-probe-{study.marker}"
    return [
        attack(
            "connect to a listener on 127.0.0.1",
            "import socket\n"
            "connected = 0\n"
            "try:\n"
            f"    conn = socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
            "    conn.sendall(b'escaped')\n"
            "    conn.close()\n"
            "    connected = 1\n"
            "except OSError as exc:\n"
            "    print('refused', exc)\n"
            "print('connected:', connected)\n"
            "print('score: 5')\n",
        ),
        attack(
            "write outside through a symlink",
            "import os\n"
            f"os.symlink({str(victim)!r}, 'out1')\n"
            "os.symlink('../../../check.sh', 'out2')  # the user's checkout, from the worktree\n"
            "for link in ('out1', 'out2'):\n"
            "    try:\n"
            "        with open(link, 'a') as out:\n"
            "            out.write('pwned\\n')\n"
            "    except OSError as exc:\n"
            "        print('refused', link, exc)\n"
            "print('score: 5')\n",
        ),
        attack(
            "write into the user's .git at run time",
            _try_writes(
                [
                    f"{repo}/.git/hooks/post-checkout",
                    f"{repo}/.git/refs/heads/evil",
                    f"{repo}/.git/config",
                    "../../../.git/config",
                ]
            ),
        ),
        attack(
            "read and write the ledger",
            "seen = 0\n"
            f"for path in [{str(repo / '.ratchet' / 'ledger.sqlite')!r}, '../../ledger.sqlite']:\n"
            "    try:\n"
            "        with open(path, 'rb') as ledger:\n"
            "            seen += ledger.read(15) == b'SQLite format 3'\n"
            "    except OSError as exc:\n"
            "        print('refused', path, exc)\n"
            "print('seen:', seen)\n"
            + _try_writes([f"{repo}/.ratchet/ledger.sqlite", "../../ledger.sqlite"], "ab"),
        ),
        attack(
            "write to the read-only filesystem",
            _try_writes([str(probe)], "w", undo=True),
        ),
        attack("overwrite a protected file in the worktree", _try_writes(["check.sh"], "w")),
        attack(
            "read a hidden path",
            "seen = 0\n"
            "try:\n"
            "    with open('heldout/val.txt') as split:\n"
            f"        seen = int({HELDOUT.strip()!r} in split.read())\n"
            "except OSError as exc:\n"
            "    print('refused', exc)\n"
            "print('seen:', seen)\n"
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
            "        time.sleep(300)\n"
            "    os._exit(0)\n"
            "os.wait()\n"
            "print('score: 5')\n",
        ),
    ]


@pytest.fixture(scope="module")
def attacked(
    module_git: None, tmp_path_factory: pytest.TempPathFactory, listener: socket.socket
) -> Hostile:
    tmp = tmp_path_factory.mktemp("bwrap")
    (tmp / "victim.txt").write_text(VICTIM)
    study = build(
        tmp,
        sandbox="bwrap",
        budget=20,
        files={"heldout/val.txt": HELDOUT},
        run_extra='hide = ["heldout"]',
    )
    return run_attacks(study, _attacks(study, listener.getsockname()[1]))


def _counted(study: Hostile, description: str) -> dict[str, float]:
    row = study.row(description)
    assert (row["status"], row["reason"]) == ("discard", "5 does not beat the incumbent's 5")
    return row["extras"]


def test_no_connection_reaches_a_listener_on_127_0_0_1(
    attacked: Hostile, listener: socket.socket
) -> None:
    assert _counted(attacked, "connect to a listener on 127.0.0.1") == {"connected": 0.0}
    assert accepted(listener) is None


def test_a_symlink_leads_nowhere_outside(attacked: Hostile) -> None:
    """The victim's directory lies in /tmp, so the write lands in the sandbox's private /tmp."""
    assert _counted(attacked, "write outside through a symlink") == {}
    assert (attacked.tmp / "victim.txt").read_text() == VICTIM
    assert (attacked.root / "check.sh").read_text() == "echo protected\n"


def test_the_users_git_directory_is_out_of_reach(attacked: Hostile) -> None:
    assert _counted(attacked, "write into the user's .git at run time") == {"escaped": 0.0}
    assert not (attacked.root / ".git" / "hooks" / "post-checkout").exists()
    assert not (attacked.root / ".git" / "refs" / "heads" / "evil").exists()


def test_the_ledger_can_be_neither_read_nor_written(attacked: Hostile) -> None:
    extras = _counted(attacked, "read and write the ledger")
    assert extras == {"seen": 0.0, "escaped": 0.0}


def test_the_filesystem_is_read_only(attacked: Hostile) -> None:
    assert _counted(attacked, "write to the read-only filesystem") == {"escaped": 0.0}
    assert not (Path(sys.executable).parent / f"ratchet-probe-{attacked.marker}").exists()


def test_protected_files_are_read_only_in_the_worktree(attacked: Hostile) -> None:
    assert _counted(attacked, "overwrite a protected file in the worktree") == {"escaped": 0.0}


def test_hidden_paths_are_empty_in_the_run_phase(attacked: Hostile) -> None:
    assert _counted(attacked, "read a hidden path") == {"seen": 0.0}


def test_a_daemon_dies_with_the_sandbox(attacked: Hostile) -> None:
    _counted(attacked, "double-forked daemon")
    assert survivors(attacked.marker) == []


def test_the_loop_went_on_and_the_checkout_is_intact(attacked: Hostile) -> None:
    assert_intact(attacked)
