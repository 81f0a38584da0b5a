"""API keys in /proc: no process a candidate can see holds one in its environment block.

The attack (issue 10, case 6): the candidate's own environment is scrubbed,
but ``/proc/<pid>/environ`` shows the environment a process was *started*
with, and at level ``process`` the candidate may read it for every process
of the same user, Ratchet and its shepherd included. The candidate here
reads every ``/proc/*/environ`` it can and counts the blocks holding a key
(``found``) and the blocks of Ratchet's own processes it could read
(``ratchet``: proof that the scan looked where the keys used to be).

Ratchet now re-executes itself without the secret names and keeps them in
memory; the llm proposer still authenticates with its key (a real HTTP
server on 127.0.0.1 checks the header). Under bwrap the candidate has its
own PID namespace and sees no process of Ratchet's at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import make_repo, ratchet
from llm_servers import Answer, ScriptedLLM

from .conftest import Hostile, assert_intact, attack, build, needs_bwrap, run_attacks

SECRETS = {
    "OPENAI_API_KEY": f"sk-{uuid.uuid4().hex}",
    "HF_TOKEN": f"hf_{uuid.uuid4().hex}",
    "DB_PASSWORD": uuid.uuid4().hex,
}


def scan(values: list[str], own_path: str) -> str:
    """Code that reads every /proc/*/environ it can and counts where ``values`` appear."""
    return (
        "import os\n"
        f"values = [v.encode() for v in {values!r}]\n"
        "found = ratchet = 0\n"
        "for pid in os.listdir('/proc'):\n"
        "    if not pid.isdigit():\n"
        "        continue\n"
        "    try:\n"
        "        with open(f'/proc/{pid}/environ', 'rb') as file:\n"
        "            block = file.read()\n"
        "        with open(f'/proc/{pid}/cmdline', 'rb') as file:\n"
        "            cmdline = file.read()\n"
        "    except OSError:\n"
        "        continue\n"
        f"    ratchet += b'ratchet\\x00run\\x00' + {own_path.encode()!r} in cmdline\n"
        "    if any(value in block for value in values):\n"
        "        found += 1\n"
        "        print('key in the environment of', pid, cmdline[:200])\n"
        "print('found:', found)\n"
        "print('ratchet:', ratchet)\n"
    )


def _attacked(tmp: pytest.TempPathFactory, level: str) -> Hostile:
    study = build(tmp.mktemp(level), sandbox=level, budget=20)
    code = scan(list(SECRETS.values()), str(study.root)) + "print('score: 5')\n"
    return run_attacks(study, [attack("read keys from /proc/*/environ", code)], env=SECRETS)


@pytest.fixture(scope="module")
def process_level(module_git: None, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    return _attacked(tmp_path_factory, "process")


@pytest.fixture(scope="module")
def bwrap_level(module_git: None, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    return _attacked(tmp_path_factory, "bwrap")


def test_no_environment_block_holds_a_key_at_process_level(process_level: Hostile) -> None:
    row = process_level.row("read keys from /proc/*/environ")
    assert row["status"] == "discard", row
    assert row["extras"]["found"] == 0.0, process_level.log_text(row["description"])
    assert row["extras"]["ratchet"] >= 2  # Ratchet and the shepherd were readable, and clean
    assert_intact(process_level)


@needs_bwrap
def test_no_process_of_ratchet_is_visible_under_bwrap(bwrap_level: Hostile) -> None:
    row = bwrap_level.row("read keys from /proc/*/environ")
    assert (row["status"], row["extras"]) == ("discard", {"found": 0.0, "ratchet": 0.0})
    assert_intact(bwrap_level)


LLM_TOML = """\
[study]
name = "keys"

[files]
editable = ["value.txt"]
protected = ["scan.py"]

[run]
command = "python scan.py && cat value.txt"
budget = 20
grace = 1
sandbox = "process"

[metric]
name = "score"
goal = "minimize"

[decision]
rule = "strict"

[proposer]
kind = "llm"
model = "test-model"
retries = 0
"""


def test_the_llm_proposer_still_authenticates_and_no_block_holds_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"sk-{uuid.uuid4().hex}"
    root = tmp_path / "study"
    make_repo(
        root,
        {
            "ratchet.toml": LLM_TOML,
            "program.md": "Lower the score.\n",
            "value.txt": "score: 5\n",
            "scan.py": scan([key], str(root)),
        },
    )
    answer = "lower it\n\nvalue.txt\n<<<<<<< SEARCH\nscore: 5\n=======\nscore: 4\n>>>>>>> REPLACE\n"
    with ScriptedLLM([Answer(answer)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", key)
        done = ratchet("run", str(root), "--max-experiments", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [h.get("Authorization") or h.get("authorization") for h in server.headers] == [
        f"Bearer {key}"
    ]
    shown = ratchet("show", "2", str(root), "--log").stdout
    assert "found: 0" in shown and "keep" in shown, shown
    ratchets = [line for line in shown.splitlines() if line.startswith("ratchet: ")]
    assert ratchets and int(ratchets[-1].split()[1]) >= 2, shown


# --- the re-executed command is the same process: pid, signals, exit codes -----------------


def test_the_reexecuted_command_keeps_its_pid_signals_and_exit_codes(tmp_path: Path) -> None:
    key = f"sk-{uuid.uuid4().hex}"
    pidfile = tmp_path / "candidate.pid"
    study = tmp_path / "study"
    make_repo(
        study,
        {
            "ratchet.toml": LLM_TOML.replace("python scan.py && cat value.txt", "sh value.txt")
            .replace('kind = "llm"\nmodel = "test-model"\nretries = 0\n', 'kind = "replay"\n')
            .replace('protected = ["scan.py"]', "protected = []"),
            "program.md": "x\n",
            "value.txt": "echo score: 5\n",
        },
    )
    replay = tmp_path / "p.jsonl"
    slow = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; sleep 120\\n"
    replay.write_text('{"description": "slow", "edits": {"value.txt": "' + slow + '"}}\n')
    env = {**os.environ, "OPENAI_API_KEY": key}
    args = ["run", str(study), "--proposer", "replay", "--replay", str(replay)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ratchet", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        end = time.monotonic() + 60
        while not pidfile.exists() and time.monotonic() < end:
            time.sleep(0.05)
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    finally:
        proc.send_signal(signal.SIGTERM)  # to the pid that was started: still Ratchet
        out, _ = proc.communicate(timeout=60)
    assert key.encode() not in environ and b"OPENAI_API_KEY" not in environ
    assert cmdline[1:4] == [b"-m", b"ratchet", b"run"]
    assert proc.returncode == 0, out
    rows = json.loads(ratchet("log", str(study), "--json").stdout)
    assert [r["status"] for r in rows] == ["baseline", "interrupted"]
    bad = subprocess.run(
        [sys.executable, "-m", "ratchet", "run", str(tmp_path / "missing")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: "), bad.stderr


HOLD = """\
import os
from ratchet.execute.environment import hold_secrets, user_environ
hold_secrets()
block = open('/proc/self/environ', 'rb').read()
print(os.environ.get('OPENAI_API_KEY'), user_environ().get('OPENAI_API_KEY'), {key!r} in block)
"""


@pytest.mark.parametrize("stray", [None, "77", "not-a-number"])
def test_held_secrets_leave_the_block_even_with_a_stray_descriptor_variable(
    stray: str | None,
) -> None:
    key = f"sk-{uuid.uuid4().hex}"
    env = {**os.environ, "OPENAI_API_KEY": key}
    if stray is not None:
        env["RATCHET_HELD_SECRETS_FD"] = stray
    done = subprocess.run(
        [sys.executable, "-c", HOLD.format(key=key.encode())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["None", key, "False"], done.stderr
