"""The nanogpt study through the real `ratchet run`: baseline and one experiment, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import git, ratchet


def test_two_experiments_of_the_nanogpt_study(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RATCHET_DATA_DIR", str(tmp_path / "data"))
    study = tmp_path / "nanogpt"
    assert ratchet("init", str(study), "--template", "nanogpt").returncode == 0
    prepared = subprocess.run(
        [sys.executable, "prepare.py"],
        cwd=study,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    assert prepared.returncode == 0, prepared.stderr
    done = ratchet("run", str(study), "--budget", "20", "--max-experiments", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(ratchet("log", str(study), "--json").stdout)
    assert [r["status"] for r in rows][0] == "baseline" and len(rows) == 2
    baseline = rows[0]
    assert 0.5 < baseline["metric"] < 8.0  # bits per byte of a briefly trained byte model
    assert "num_params_M" in baseline["extras"] and "training_seconds" in baseline["extras"]
    # pruned too: on a loaded machine the candidate's curve lags the baseline's
    finished = ("keep", "discard", "crash", "timeout", "pruned")
    assert all(r["status"] in finished for r in rows[1:]), rows
    assert git(study, "status", "--porcelain") == ""
    # the evaluation's data never sat in the worktree the candidate ran in
    worktree = study / ".ratchet" / "worktrees" / "main"
    assert not list(worktree.rglob("val*")), "validation data is visible to the run phase"
