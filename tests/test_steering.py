"""A human steering a study: notes, program.md, what a tag pins, stop/pause/resume, invalidate.

Everything is real: git repositories, the `ratchet` command in subprocesses, the
ledger in SQLite, and a scripted LLM on 127.0.0.1 (tests/llm_servers.py) whose
answers can act mid-run (a step that is a function runs while the loop waits
for the proposal), so "from the next prompt on" is tested without timing.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_TOML, git, make_repo, ratchet
from llm_servers import Answer, ScriptedLLM, last_user_text
from ui_helpers import get, serve

from ratchet.run.workspace import pin_changes
from ratchet.store.ledger import Ledger
from ratchet.store.migrations import LATEST, migrate

LLM = 'kind = "llm"\nmodel = "test-model"\nretries = 0\ntimeout = 30\nmax_failures = 3\n'


def _study(tmp_path: Path, toml: str = FAST_TOML, **files: str) -> Path:
    return make_repo(
        tmp_path / "study",
        {
            "ratchet.toml": toml.replace('kind = "replay"\n', LLM),
            "program.md": "Lower the score. PROGRAM-V1\n",
            "value.txt": "score: 9\n",
            "check.sh": "echo protected\n",
            **files,
        },
    )


def _score(old: int, new: int) -> Answer:
    text = f"score {old} -> {new}\n\nvalue.txt\n<<<<<<< SEARCH\nscore: {old}\n=======\n"
    return Answer(text + f"score: {new}\n>>>>>>> REPLACE\n")


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("RATCHET_MODEL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-proposer-key-0123456789")
    monkeypatch.setenv("RATCHET_LLM_BACKOFF", "0.01")
    return monkeypatch


def _run(root: Path, server: ScriptedLLM, env: pytest.MonkeyPatch, *args: str):
    env.setenv("OPENAI_BASE_URL", server.url + "/v1")
    return ratchet("run", str(root), "--proposer", "llm", *args)


def _rows(root: Path, *args: str) -> list[dict[str, Any]]:
    done = ratchet("log", str(root), "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _measure(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``ratchet run --max-experiments 0``: the baseline only (an empty replay file)."""
    empty = root.parent / "none.jsonl"
    empty.write_text("")
    return ratchet("run", str(root), "--max-experiments", "0", "--replay", str(empty), *args)


def _prompts(server: ScriptedLLM) -> list[str]:
    return [last_user_text(chat) for chat in server.chats]


def _then(action, answer: Answer):  # type: ignore[no-untyped-def]
    """A script step that does ``action`` (while the loop waits for it), then answers."""

    def step(_body: dict[str, Any]) -> Answer:
        action()
        return answer

    return step


# --- notes ------------------------------------------------------------------------------


def test_a_note_reaches_the_next_prompt_and_the_journal(
    tmp_path: Path, llm: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)

    def note() -> None:
        done = ratchet("note", "try a smaller batch first NOTE-MARKER", str(root))
        assert done.returncode == 0, done.stderr

    with ScriptedLLM([_then(note, _score(9, 8)), _score(8, 7)]) as server:
        done = _run(root, server, llm, "--max-experiments", "2")
    assert done.returncode == 0, done.stderr
    first, second = _prompts(server)
    assert "NOTE-MARKER" not in first
    assert "# Notes from the human" in second and "try a smaller batch first NOTE-MARKER" in second
    journal = (root / ".ratchet" / "journal.md").read_text()
    assert "## Notes from the human" in journal and "NOTE-MARKER" in journal
    assert ratchet("note", "  ", str(root)).returncode == 2


# --- program.md and what a tag pins -------------------------------------------------------


def test_program_committed_mid_run_reaches_the_next_prompt_without_a_new_tag(
    tmp_path: Path, llm: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)

    def steer() -> None:
        (root / "program.md").write_text("Lower the score. PROGRAM-V2\n")
        git(root, "commit", "-qam", "steer")

    script = [_then(steer, _score(9, 8)), _score(8, 7), _score(7, 6)]
    with ScriptedLLM(script) as server:
        assert _run(root, server, llm, "--max-experiments", "2").returncode == 0
        # a draft in the working copy is neither shown nor refused: the committed one counts
        (root / "program.md").write_text("Lower the score. PROGRAM-DRAFT\n")
        again = _run(root, server, llm, "--max-experiments", "1")
    assert again.returncode == 0, again.stderr
    prompts = _prompts(server)
    assert "PROGRAM-V1" in prompts[0] and "PROGRAM-V2" not in prompts[0]
    assert all("PROGRAM-V2" in p and "PROGRAM-DRAFT" not in p for p in prompts[1:])
    assert [r["status"] for r in _rows(root)] == ["baseline", "keep", "keep", "keep"]
    assert {r["tag"] for r in _rows(root)} == {"main"}


def test_a_budget_change_and_a_budget_override_are_both_refused_naming_the_key(
    fast_study: Path,
) -> None:
    root = fast_study
    assert _measure(root).returncode == 0
    toml = root / "ratchet.toml"
    toml.write_text(FAST_TOML.replace("budget = 10", "budget = 20"))
    git(root, "commit", "-qam", "longer budget")
    changed = _measure(root)
    assert changed.returncode == 2
    assert "[run] budget changed from 10 to 20, which changes what is measured" in changed.stderr
    assert "start a new tag with --tag main-2" in changed.stderr
    toml.write_text(FAST_TOML.replace('rule = "strict"', 'rule = "strict"\nmin_delta = 0.5'))
    git(root, "commit", "-qam", "back to 10 s; a decision setting changes")
    override = _measure(root, "--budget", "30")
    assert override.returncode == 2
    assert "[run] budget changed from 10 to 30" in override.stderr
    same = _measure(root)
    assert same.returncode == 0, same.stderr  # a decision setting may change within a tag
    (root / "check.sh").write_text("echo changed\n")
    git(root, "commit", "-qam", "a protected file changes")
    protected = _measure(root)
    assert protected.returncode == 2 and "protected file check.sh changed" in protected.stderr
    fresh = _measure(root, "--budget", "30", "--tag", "b30")
    assert fresh.returncode == 0, fresh.stderr
    assert [r["budget_s"] for r in _rows(root, "--tag", "b30")] == [30.0]


def test_pins_of_an_older_ledger_compare_only_what_both_sides_have() -> None:
    old = {"ratchet.toml": "aa", "program.md": "bb", "check.sh": "cc"}
    now = {"check.sh": "cc", "[run] budget": "10"}
    assert pin_changes(old, now, ("ratchet.toml", "program.md")) == []
    unpinned = ("ratchet.toml", "program.md")
    assert pin_changes({**old, "[run] budget": "10"}, {**now, "[run] budget": "20"}, unpinned) == [
        "[run] budget changed from 10 to 20"
    ]
    assert pin_changes(old, {"[run] budget": "10"}, ("ratchet.toml", "program.md")) == [
        "protected file check.sh was removed"
    ]


def test_a_failed_baseline_is_fixed_and_rerun_on_the_same_tag(fast_study: Path) -> None:
    root = fast_study
    broken = FAST_TOML.replace('command = "cat value.txt"', 'command = "sh value.txt"')
    (root / "ratchet.toml").write_text(broken)
    git(root, "commit", "-qam", "a command that fails")
    failed = _measure(root)
    assert failed.returncode == 1
    (root / "ratchet.toml").write_text(FAST_TOML)
    git(root, "commit", "-qam", "fix the command")
    fixed = _measure(root)
    assert fixed.returncode == 0, fixed.stderr
    rows = _rows(root, "--tag", "main")
    assert [r["status"] for r in rows] == ["crash", "baseline"] and rows[1]["metric"] == 5.0


# --- stop, pause, resume ----------------------------------------------------------------


def test_stop_finishes_the_running_experiment_and_exits_cleanly(
    tmp_path: Path, llm: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    said: list[subprocess.CompletedProcess] = []
    stop = _then(lambda: said.append(ratchet("stop", str(root))), _score(9, 8))
    with ScriptedLLM([stop, _score(8, 7), _score(7, 6)]) as server:
        done = _run(root, server, llm, "--max-experiments", "5")
    assert said[0].returncode == 0 and "will stop" in said[0].stdout
    assert done.returncode == 0, done.stderr
    assert "stopped by `ratchet stop`" in done.stdout
    assert [r["status"] for r in _rows(root)] == ["baseline", "keep"]
    assert len(server.chats) == 1
    assert not (root / ".ratchet" / "control" / "main").exists()
    assert ratchet("stop", str(root)).returncode == 2  # nothing runs now


def test_pause_holds_the_loop_and_resume_continues(tmp_path: Path, llm: pytest.MonkeyPatch) -> None:
    root = _study(tmp_path)
    seen: dict[str, Any] = {}

    def resume_later() -> None:
        time.sleep(2.0)
        seen["status"] = ratchet("status", str(root)).stdout
        seen["resumed_at"] = time.monotonic()
        seen["resume"] = ratchet("resume", str(root))

    def pause() -> None:
        seen["pause"] = ratchet("pause", str(root))
        threading.Thread(target=resume_later, daemon=True).start()

    def second(_body: dict[str, Any]) -> Answer:
        seen["second_at"] = time.monotonic()
        return _score(8, 7)

    with ScriptedLLM([_then(pause, _score(9, 8)), second]) as server:
        done = _run(root, server, llm, "--max-experiments", "2")
    assert done.returncode == 0, done.stderr
    assert seen["pause"].returncode == 0 and seen["resume"].returncode == 0
    assert "paused" in seen["status"]
    assert seen["second_at"] > seen["resumed_at"], "the loop proposed while paused"
    assert "paused (tag main)" in done.stdout and "resumed (tag main)" in done.stdout
    assert [r["status"] for r in _rows(root)] == ["baseline", "keep", "keep"]


# --- invalidate -------------------------------------------------------------------------


def test_invalidate_moves_the_incumbent_and_branch_back_and_the_reason_shows(
    tmp_path: Path, llm: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([_score(9, 8), _score(8, 3)]) as server:
        assert _run(root, server, llm, "--max-experiments", "2").returncode == 0
    rows = _rows(root)
    assert [r["status"] for r in rows] == ["baseline", "keep", "keep"]
    bad = rows[2]
    assert git(root, "rev-parse", "ratchet/main") == bad["commit"]
    done = ratchet("invalidate", str(bad["id"]), str(root), "--reason", "read the test set")
    assert done.returncode == 0, done.stderr
    assert git(root, "rev-parse", "ratchet/main") == rows[1]["commit"]
    assert git(root, "rev-parse", f"refs/ratchet/main/exp/{bad['id']}") == bad["commit"]
    after = _rows(root)
    assert after[2]["void"] == "read the test set" and after[1]["void"] is None
    log = ratchet("log", str(root)).stdout
    assert "keep (void)" in log and "read the test set" in log
    show = ratchet("show", str(bad["id"]), str(root)).stdout
    assert "keep (void)" in show and "void: read the test set" in show
    status = ratchet("status", str(root)).stdout
    assert f"incumbent 8 (#{rows[1]['id']}" in status and "read the test set" in status
    journal = (root / ".ratchet" / "journal.md").read_text()
    assert "voided by a human: read the test set" in journal
    assert ratchet("report", str(root)).returncode == 0
    report = (root / ".ratchet" / "report.md").read_text()
    assert "## Voided keeps" in report
    assert f"| {bad['id']} | score 8 -> 3 | read the test set |" in report
    assert f"| best score | 8 (experiment {rows[1]['id']}" in report
    # the next run builds on the fallen-back incumbent, and its prompt says why
    with ScriptedLLM([_score(8, 7)]) as server:
        assert _run(root, server, llm, "--max-experiments", "1").returncode == 0
    assert "keep (void)" in _prompts(server)[0] and "read the test set" in _prompts(server)[0]
    assert _rows(root)[-1]["status"] == "keep"
    assert git(root, "show", "ratchet/main:value.txt") == "score: 7"
    again = ratchet("invalidate", str(bad["id"]), str(root), "--reason", "twice")
    assert again.returncode == 2 and "already void" in again.stderr
    base = ratchet("invalidate", str(rows[0]["id"]), str(root), "--reason", "x")
    assert base.returncode == 2 and "not a keep" in base.stderr


# --- the dashboard -----------------------------------------------------------------------


def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def test_a_note_from_the_dashboard_needs_the_write_token_and_reaches_the_next_prompt(
    tmp_path: Path, llm: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([_score(9, 8)]) as server:
        assert _run(root, server, llm, "--max-experiments", "0").returncode == 0
        with serve(root) as ui:
            status, shell = get(ui, "/")
            token = re.search(r'name="ratchet-write-token" content="([^"]+)"', shell.decode())
            assert status == 200 and token is not None
            body = json.dumps({"tag": "main", "text": "UI-NOTE-MARKER halve it"}).encode()
            good = {"Content-Type": "application/json", "X-Ratchet-Token": token.group(1)}
            refused = [
                _post(ui.url, "/api/steer/note", body, {"Content-Type": "application/json"}),
                _post(ui.url, "/api/steer/note", body, {**good, "X-Ratchet-Token": "guess"}),
                _post(ui.url, "/api/steer/note", body, {**good, "Origin": "http://evil.test"}),
                _post(ui.url, "/api/steer/note", b"text=x", {**good, "Content-Type": "text/plain"}),
            ]
            assert [code for code, _ in refused] == [403, 403, 403, 415]
            assert ratchet("log", str(root)).returncode == 0
            origin = {**good, "Origin": ui.url}
            assert _post(ui.url, "/api/steer/note", body, origin)[0] == 200
            paused = _post(ui.url, "/api/steer/pause", b"{}", good)
            assert paused[0] == 409 and "not running" in paused[1]
        assert _run(root, server, llm, "--max-experiments", "1").returncode == 0
    assert "UI-NOTE-MARKER halve it" in _prompts(server)[0]
    assert "UI-NOTE-MARKER" in (root / ".ratchet" / "journal.md").read_text()


# --- the schema -------------------------------------------------------------------------


def test_a_ledger_of_the_previous_schema_is_carried_up_with_notes_and_voids(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, upto=LATEST - 1)
    db.execute(
        "INSERT INTO experiments (tag, parent, commit_sha, description, rationale, meta,"
        " input_tokens, output_tokens, cost_usd, log_dir, created_at)"
        " VALUES ('t', NULL, 'abc', 'baseline', '', '{}', 0, 0, 0, '', 1)"
    )
    db.close()
    old = Ledger(path, read_only=True)
    assert old.notes() == [] and old.experiments()[0].void is None  # read as it is
    old.close()
    ledger = Ledger(path)
    try:
        ledger.add_note("t", "hello")
        ledger.void(1, "wrong")
        assert [n.text for n in ledger.notes("t")] == ["hello"] and ledger.notes("u") == []
        assert ledger.experiments()[0].void == "wrong"
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            ledger._db.execute("DELETE FROM voids")
    finally:
        ledger.close()



def test_the_agent_prompt_carries_the_notes_and_the_voided_keep(tmp_path: Path) -> None:
    from ratchet.models import Context, Experiment, Note
    from ratchet.proposers.agent import agent_prompt
    from ratchet.study import load_study

    study = load_study(_study(tmp_path))
    base = Experiment(id=1, tag="main", parent=None, commit="c", status="baseline", metric=9.0)
    bad = Experiment(
        id=2, tag="main", parent="c", commit="d", status="keep", metric=1.0,
        description="read the answers", void="a leak found later",
    )  # fmt: skip
    context = Context(
        study_name="fast", tag="main", program="Lower the score.\n", files={"value.txt": ""},
        parent_commit="c", metric_name="score", goal="minimize", history=[base, bad],
        incumbent=base, workdir=str(study.root), notes=[Note(1, "main", "go small", 0.0)],
    )  # fmt: skip
    prompt = agent_prompt(context, study)
    assert "## Notes from the human (oldest first; follow them)\n- go small" in prompt
    assert "#2 keep (void) 1 read the answers (voided by the human: a leak found later)" in prompt
