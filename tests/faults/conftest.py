"""Faults of Ratchet itself: a small study, and the checks every fault test ends with.

The study's run command carries a marker unique to the test, so any process
of the run left behind (the command, a daemon it started, or a shepherd
forked from ``ratchet``, whose command line names the study directory) can
be found in /proc afterwards.

This directory is a package (``__init__.py``) so that its conftest does not
replace the top-level ``conftest`` module that test files import helpers from.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import git, make_repo, ratchet

INJECT = Path(__file__).with_name("inject.py")

FAULT_TOML = """\
[study]
name = "faults"

[files]
editable = ["run.sh"]
protected = ["check.sh"]

[run]
command = "sh run.sh {marker}"
budget = 30
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


def score(value: float) -> str:
    return f"echo score: {value}\n"


# Four proposals: keep, discard, keep, keep (baseline 5, lower is better).
PROPOSALS = [
    {"description": "three", "edits": {"run.sh": score(3)}},
    {"description": "four", "edits": {"run.sh": score(4)}},
    {"description": "two", "edits": {"run.sh": score(2)}},
    {"description": "one", "edits": {"run.sh": score(1)}},
]
STATUSES = ["baseline", "keep", "discard", "keep", "keep"]


@dataclass
class FaultStudy:
    root: Path
    marker: str
    head: str
    protected: bytes

    def replay_args(self, replay: Path, *extra: str) -> list[str]:
        return ["run", str(self.root), "--proposer", "replay", "--replay", str(replay), *extra]


@pytest.fixture
def fault_study(tmp_path: Path) -> FaultStudy:
    marker = f"ratchet-fault-{uuid.uuid4().hex[:12]}"
    root = make_repo(
        tmp_path / "study",
        {
            "ratchet.toml": FAULT_TOML.format(marker=marker),
            "program.md": "Lower the score.\n",
            "run.sh": score(5),
            "check.sh": "echo protected\n",
        },
    )
    return FaultStudy(root, marker, git(root, "rev-parse", "HEAD"), b"echo protected\n")


def inject(step: str, n: int, args: list[str]) -> subprocess.CompletedProcess:
    """``ratchet ARGS`` killed with SIGKILL the n-th time it reaches ``step``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(INJECT), step, str(n), "--", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def log_rows(root: Path) -> list[dict]:
    done = ratchet("log", str(root), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is dead: it only awaits its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def processes_with(*needles: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains any of ``needles``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(n in cmdline for n in needles):
            found.append(int(name))
    return found


def wait_no_processes(*needles: str, timeout: float = 15) -> list[int]:
    """Wait until no process matches; return the survivors (empty when all are gone)."""
    end = time.monotonic() + timeout
    while (left := processes_with(*needles)) and time.monotonic() < end:
        time.sleep(0.1)
    return left


def read_tsv(root: Path) -> list[dict]:
    with (root / ".ratchet" / "results-main.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert all(None not in row and None not in row.values() for row in rows), rows
    return rows


def assert_consistent(study: FaultStudy, descriptions: list[str], statuses: list[str]) -> None:
    """What a user relies on after any fault and a resume.

    Every proposal is recorded exactly once and in order, ids are unique,
    nothing is left ``running``, each experiment's ref and the branch agree
    with the ledger, results.tsv is complete and matches it, no process of
    the run survives, and the user's checkout is untouched.
    """
    rows = log_rows(study.root)
    assert [r["description"] for r in rows] == descriptions
    assert [r["status"] for r in rows] == statuses
    ids = [r["id"] for r in rows]
    assert ids == sorted(set(ids))
    proposed = [r for r in rows[1:] if r["status"] != "remeasure"]  # incumbent top-ups aside
    lines = [r["meta"].get("replay_line") for r in proposed]
    assert lines == list(range(1, len(proposed) + 1)), "a replay line was skipped or used twice"

    kept = [r for r in rows if r["status"] in ("baseline", "keep")]
    assert git(study.root, "rev-parse", "refs/heads/ratchet/main") == kept[-1]["commit"]
    for r in rows:
        if r["commit"]:
            ref = f"refs/ratchet/main/exp/{r['id']}"
            assert git(study.root, "rev-parse", ref) == r["commit"]

    tsv = read_tsv(study.root)
    assert [(t["commit"], t["status"], t["description"]) for t in tsv] == [
        ((r["commit"] or "")[:7], r["status"], r["description"]) for r in rows
    ]

    assert wait_no_processes(study.marker, str(study.root)) == []
    assert git(study.root, "rev-parse", "HEAD") == study.head
    assert git(study.root, "status", "--porcelain", "--untracked-files=all") == ""
    assert (study.root / "check.sh").read_bytes() == study.protected
