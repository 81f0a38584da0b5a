"""The mutate proposer in real runs: it ends a run cleanly when there is nothing to change."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_repo, ratchet

TOML = """\
[study]
name = "nothing"

[files]
editable = ["solve.py"]

[run]
command = "python solve.py"
budget = 20
grace = 1

[metric]
name = "loss"

[decision]
rule = "strict"
"""


def test_no_literal_ends_the_run_with_one_sentence_and_no_junk_rows(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "s", {
        "ratchet.toml": TOML, "program.md": "x", "solve.py": "print('loss: ' + str(len('ab')))\n",
    })  # fmt: skip
    done = ratchet("run", str(root), "--max-experiments", "5")
    assert done.returncode == 0, done.stderr
    assert "no numeric literal in the editable code (solve.py)" in done.stdout + done.stderr
    assert "doctor" not in done.stdout + done.stderr
    rows = json.loads(ratchet("log", str(root), "--json").stdout)
    assert [r["status"] for r in rows] == ["baseline"]


def test_a_new_incumbent_from_try_gets_proposals_again(tmp_path: Path) -> None:
    """After `ratchet try` keeps a new incumbent, mutate proposes from it (memory per parent)."""
    solve = "X = 4.0\nprint(f'loss: {abs(X - 3) + 1}')\n"
    root = make_repo(tmp_path / "s", {"ratchet.toml": TOML, "program.md": "x", "solve.py": solve})
    assert ratchet("run", str(root), "--max-experiments", "3").returncode == 0
    (root / "solve.py").write_text(solve.replace("X = 4.0", "X = 3.0"))  # the optimum: a keep
    tried = ratchet("try", str(root), "-m", "X by hand")
    assert tried.returncode == 0, tried.stdout + tried.stderr
    again = ratchet("run", str(root), "--max-experiments", "3")
    assert again.returncode == 0, again.stderr
    rows = json.loads(ratchet("log", str(root), "--json").stdout)
    after_try = rows[5:]
    assert rows[4]["status"] == "keep" and rows[4]["description"] == "X by hand"
    assert len(after_try) == 3 and all("X 3.0 → " in r["description"] for r in after_try)
