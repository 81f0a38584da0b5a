"""Proposals that reach outside what they may edit are rejected before anything runs.

These attacks are stopped by the pre-run checks, whatever the sandbox level:
a rejected proposal is never committed, never run, and costs no budget.
"""

from __future__ import annotations

import os

import pytest
from conftest import git

from .conftest import Hostile, assert_intact, build, run_attacks

VICTIM = "the user's file outside the study\n"

ATTACKS = [
    {"description": "edit a protected file", "edits": {"check.sh": "echo pwned\n"}},
    {"description": "edit ratchet.toml", "edits": {"ratchet.toml": "[study]\nname = 'x'\n"}},
    {"description": "dot-dot path", "edits": {"../outside.txt": "escaped\n"}},
    {"description": "dot-dot inside a path", "edits": {"sub/../../outside.txt": "escaped\n"}},
    {"description": "write into .git", "edits": {".git/hooks/post-checkout": "#!/bin/sh\n"}},
    {"description": "write through a symlink", "edits": {"notes.txt": "escaped\n"}},
]


@pytest.fixture(scope="module")
def attacked(module_git: None, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    tmp = tmp_path_factory.mktemp("policy")
    victim = tmp / "victim.txt"
    victim.write_text(VICTIM)
    study = build(tmp, sandbox="process", editable=("attack.py", "notes.txt"))
    # notes.txt is editable, but committed as a symlink to a file outside the repository.
    os.symlink(victim, study.root / "notes.txt")
    git(study.root, "add", "notes.txt")
    git(study.root, "commit", "-q", "-m", "notes")
    study.head = git(study.root, "rev-parse", "HEAD")
    return run_attacks(study, ATTACKS)


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("edit a protected file", "policy: check.sh is protected (the evaluation must stay fixed)"),
        (
            "edit ratchet.toml",
            "policy: ratchet.toml is protected (the evaluation must stay fixed)",
        ),
        ("dot-dot path", "policy: '../outside.txt' is outside the study directory"),
        ("dot-dot inside a path", "policy: 'sub/../../outside.txt' is outside the study directory"),
        ("write into .git", "policy: .git/hooks/post-checkout is inside git or ratchet metadata"),
        ("write through a symlink", "notes.txt is a symlink"),
    ],
)
def test_rejected_before_running(attacked: Hostile, description: str, reason: str) -> None:
    row = attacked.row(description)
    assert (row["status"], row["reason"]) == ("rejected", reason)
    assert row["commit"] is None and row["duration_s"] == 0.0
    assert not (attacked.root / ".ratchet" / "logs" / str(row["id"])).exists(), "it ran"


def test_nothing_outside_the_study_was_written(attacked: Hostile) -> None:
    assert (attacked.tmp / "victim.txt").read_text() == VICTIM
    assert not (attacked.tmp / "outside.txt").exists()
    assert not (attacked.root.parent / "outside.txt").exists()
    assert not (attacked.root / ".git" / "hooks" / "post-checkout").exists()


def test_the_loop_went_on_and_the_checkout_is_intact(attacked: Hostile) -> None:
    assert_intact(attacked)
