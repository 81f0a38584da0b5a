"""Hostile candidates, delivered by the replay proposer, and the checks after each run.

One study per test module, not per attack: its editable ``attack.py`` is what
``[run] command`` runs, the replay file delivers one attack per proposal and
then a benign one, and ``ratchet run`` goes through them all in one call (a
module-scoped fixture). Each test then reads one attack's outcome as a user
would: ``ratchet log --json``, the logs, the files. The benign proposal at
the end is recorded as a keep, which shows the loop went on after the
attacks and still judges.

The run command carries a marker unique to the module, so every process a
candidate started can be found in /proc afterwards; attacks that fork write
their pids to files outside the study, which the tests check are dead.

This directory is a package (``__init__.py``) so that its conftest does not
replace the top-level ``conftest`` module that test files import helpers from.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import git, make_repo, ratchet

from ratchet.errors import SandboxError
from ratchet.execute.sandbox import check_available

STUDY_TOML = """\
[study]
name = "hostile"

[files]
editable = {editable}
protected = {protected}

[run]
command = "python attack.py {marker}"
budget = {budget}
grace = 1
sandbox = "{sandbox}"
log_cap_mb = 1
max_processes = 64
max_file_mb = 5
max_memory_mb = 500
{run_extra}
{evaluate}
[metric]
name = "score"
goal = "minimize"

[decision]
rule = "strict"

[proposer]
kind = "replay"
"""

BASELINE = 'print("score: 5")\n'
BENIGN = {"description": "benign", "edits": {"attack.py": 'print("score: 4")\n'}}


def bwrap_problem() -> str:
    """Why ``sandbox = "bwrap"`` cannot run here ('' when it can), by Ratchet's own probe."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        check_available("bwrap")  # runs a trivial command with the options every run uses
    except SandboxError as exc:
        return str(exc)
    return ""


BWRAP_PROBLEM = bwrap_problem()
needs_bwrap = pytest.mark.skipif(bool(BWRAP_PROBLEM), reason=BWRAP_PROBLEM or "bwrap works")


@dataclass
class Hostile:
    """A study under attack, what it looked like before, and how the run went."""

    root: Path
    tmp: Path  # outside the study: victims, pid files
    marker: str
    head: str
    before: dict[str, str]  # sha256 of the protected files, .git's hooks, config and HEAD
    level: str = "process"  # [run] sandbox
    attacks: list[dict] = field(default_factory=list)
    done: subprocess.CompletedProcess | None = None
    rows: list[dict] = field(default_factory=list)

    def row(self, description: str) -> dict:
        [found] = [r for r in self.rows if r["description"] == description]
        return found

    def log_text(self, description: str, phase: str = "run") -> str:
        path = self.root / ".ratchet" / "logs" / str(self.row(description)["id"]) / f"{phase}.log"
        return path.read_text(errors="replace")


def _fingerprint(root: Path, protected: list[str]) -> dict[str, str]:
    """Hashes of what an escaped candidate would tamper with in the user's checkout."""
    paths = [root / name for name in protected]
    paths += sorted(p for p in (root / ".git" / "hooks").rglob("*") if p.is_file())
    paths += [root / ".git" / "config", root / ".git" / "HEAD"]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def module_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The root conftest's git identity, for module-scoped studies (it is per test)."""
    config = tmp_path_factory.mktemp("home") / ".gitconfig"
    config.write_text(
        "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_CONFIG_GLOBAL", str(config))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.setenv("RATCHET_RAISE_ERRORS", "")
        yield


def build(
    tmp: Path,
    *,
    sandbox: str,
    budget: float = 4,
    editable: tuple[str, ...] = ("attack.py",),
    protected: tuple[str, ...] = ("check.sh",),
    files: Mapping[str, str] | None = None,
    run_extra: str = "",
    evaluate: str = "",
) -> Hostile:
    """A committed study whose ``attack.py`` prints ``score: 5``; victims go in ``tmp``."""
    marker = f"ratchet-hostile-{uuid.uuid4().hex[:12]}"
    toml = STUDY_TOML.format(
        editable=json.dumps(list(editable)),
        protected=json.dumps(list(protected)),
        marker=marker,
        budget=budget,
        sandbox=sandbox,
        run_extra=run_extra,
        evaluate=evaluate,
    )
    content = {
        "ratchet.toml": toml,
        "program.md": "Lower the score.\n",
        "attack.py": BASELINE,
        "check.sh": "echo protected\n",
        **(files or {}),
    }
    root = make_repo(tmp / "study", content)
    (tmp / "pids").mkdir()
    names = ["ratchet.toml", "program.md", *protected]
    head = git(root, "rev-parse", "HEAD")
    return Hostile(root, tmp, marker, head, _fingerprint(root, names), level=sandbox)


def run_attacks(
    study: Hostile,
    attacks: list[dict],
    env: Mapping[str, str] | None = None,
    benign: dict = BENIGN,
) -> Hostile:
    """Replay ``attacks`` then ``benign`` (score 4) in one ``ratchet run``; record the outcome."""
    study.attacks = attacks
    replay = study.tmp / "proposals.jsonl"
    replay.write_text("".join(json.dumps(p) + "\n" for p in [*attacks, benign]))
    args = ["run", str(study.root), "--proposer", "replay", "--replay", str(replay)]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        study.done = ratchet(*args)
    log = ratchet("log", str(study.root), "--json")
    assert log.returncode == 0, log.stderr
    study.rows = json.loads(log.stdout)
    return study


def accepted(listener: socket.socket, wait: float = 0.5) -> bytes | None:
    """What a connection to ``listener`` sent, or None when nobody connected."""
    ready, _, _ = select.select([listener], [], [], wait)
    if not ready:
        return None
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        return conn.recv(100)


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """A socket listening on 127.0.0.1 (ephemeral port) for the whole module."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def survivors(marker: str, pids: Sequence[int] = (), timeout: float = 15) -> list[int]:
    """Processes of the run still alive after ``timeout``: by marker, or from pid files."""
    end = time.monotonic() + timeout
    while True:
        left = [p for p in pids if _alive(p)] + _with_marker(marker)
        if not left or time.monotonic() >= end:
            return left
        time.sleep(0.1)


def pids_in(directory: Path) -> list[int]:
    """The pids that attacks wrote to ``directory`` (one file each, written atomically)."""
    return [int(p.read_text()) for p in sorted(directory.glob("*.pid"))]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _with_marker(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and _alive(int(name)):
                found.append(int(name))
    return found


def assert_intact(study: Hostile) -> None:
    """After all the attacks: the loop went on, the record and the user's checkout are whole."""
    done = study.done
    assert done is not None and done.returncode == 0, done and done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "has no proposal after line" in done.stdout, "the run stopped before the replay ended"
    wanted = ["baseline", *(a["description"] for a in study.attacks), "benign"]
    assert [r["description"] for r in study.rows] == wanted
    assert len({r["id"] for r in study.rows}) == len(study.rows)
    assert study.row("benign")["status"] == "keep", study.row("benign")
    assert study.row("benign")["metric"] == 4.0
    assert git(study.root, "rev-parse", "HEAD") == study.head
    assert git(study.root, "status", "--porcelain", "--untracked-files=all") == ""
    names = [Path(p).relative_to(study.root).as_posix() for p in study.before]
    names = [n for n in names if not n.startswith(".git/")]
    assert _fingerprint(study.root, names) == study.before
    refs = git(study.root, "for-each-ref", "--format=%(refname)").split()
    ours = [r for r in refs if r.startswith("refs/ratchet/main/exp/")]
    assert sorted(set(refs) - set(ours)) == ["refs/heads/main", "refs/heads/ratchet/main"]
    assert git(study.root, "rev-parse", "refs/heads/main") == study.head
    assert survivors(study.marker, pids_in(study.tmp / "pids")) == []


def attack(description: str, code: str) -> dict:
    """One replay proposal: ``attack.py`` becomes ``code``."""
    return {"description": description, "edits": {"attack.py": code}}
