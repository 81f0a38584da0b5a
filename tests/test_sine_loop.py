"""The core promise on the hands-on study: 30 mutate experiments at least halve the MSE."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git, ratchet


def test_mutate_halves_sine_mse_in_30_experiments(tmp_path: Path) -> None:
    study = tmp_path / "sine"
    assert ratchet("init", str(study), "--template", "sine").returncode == 0
    done = ratchet("run", str(study), "--max-experiments", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(ratchet("log", str(study), "--json").stdout)
    assert len(rows) == 31 and rows[0]["status"] == "baseline"
    kept = [r for r in rows if r["status"] in ("baseline", "keep")]
    assert kept[-1]["metric"] <= kept[0]["metric"] / 2
    # the branch holds exactly the kept changes, the user's checkout none of them
    assert git(study, "rev-parse", "ratchet/main") == kept[-1]["commit"]
    assert git(study, "status", "--porcelain") == ""
    assert all("train.py:" in r["description"] for r in rows[1:] if r["status"] != "rejected")
