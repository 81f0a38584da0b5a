"""Resume repairs the islands' branches: a kill between a keep's ledger row and its
island branch's move leaves the branch behind; reopening the tag moves it forward."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ratchet import RunOptions, load_study, run_study
from ratchet.decide.judge import StrictJudge
from ratchet.observer import Observer
from ratchet.policies import IslandsPolicy
from ratchet.proposers import ReplayProposer
from ratchet.store.ledger import Ledger


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def _values(*scores: int) -> list[dict]:
    return [{"description": f"score {s}", "edits": {"value.txt": f"score: {s}\n"}} for s in scores]


class Said(Observer):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def test_resume_moves_each_island_branch_forward_to_its_incumbent(
    fast_study: Path, write_replay
) -> None:
    islands = IslandsPolicy(goal="minimize", islands=2, migrate_every=100, stagnation=100)
    study = load_study(fast_study)
    run_study(study, ReplayProposer(write_replay(_values(4, 3, 2, 1))), StrictJudge(),
              RunOptions(), policy=islands)  # fmt: skip
    ledger = Ledger(fast_study / ".ratchet" / "ledger.sqlite")
    try:
        keeps = [e for e in ledger.experiments() if e.status == "keep"]
    finally:
        ledger.close()
    assert [(e.island, e.metric) for e in keeps] == [(0, 4.0), (1, 3.0), (0, 2.0), (1, 1.0)]
    refs = [f"refs/heads/ratchet-island/main/{k}" for k in (0, 1)]
    # the state a kill -9 leaves: both keeps recorded, island 0's branch one keep behind,
    # island 1's branch never written (its first keep would have created it)
    _git(fast_study, "update-ref", refs[0], keeps[0].commit)  # type: ignore[arg-type]
    _git(fast_study, "update-ref", "-d", refs[1])
    said = Said()
    run_study(study, ReplayProposer(write_replay([])), StrictJudge(), RunOptions(), said,
              policy=islands)  # fmt: skip
    assert _git(fast_study, "rev-parse", refs[0]) == keeps[2].commit  # a fast-forward
    assert _git(fast_study, "rev-parse", refs[1]) == keeps[3].commit
    assert any("moved ratchet-island/main/0 to island 0's incumbent" in s for s in said.lines)
    # forward only: a branch ahead of the ledger's keep (a user's commit on it) stays put
    tree = _git(fast_study, "rev-parse", f"{keeps[3].commit}^{{tree}}")
    ahead = _git(fast_study, "commit-tree", tree, "-p", keeps[3].commit, "-m", "mine")
    _git(fast_study, "update-ref", refs[1], ahead)
    run_study(study, ReplayProposer(write_replay([])), StrictJudge(), RunOptions(),
              policy=islands)  # fmt: skip
    assert _git(fast_study, "rev-parse", refs[1]) == ahead
    assert _git(fast_study, "rev-parse", refs[0]) == keeps[2].commit


def test_a_branch_that_went_elsewhere_gets_the_keep_merged_not_lost(
    fast_study: Path, write_replay
) -> None:
    islands = IslandsPolicy(goal="minimize", islands=1, migrate_every=100, stagnation=100)
    study = load_study(fast_study)
    run_study(study, ReplayProposer(write_replay(_values(4, 3))), StrictJudge(), RunOptions(),
              policy=islands)  # fmt: skip
    ref = "refs/heads/ratchet-island/main/0"
    last = _git(fast_study, "rev-parse", ref)
    tree = _git(fast_study, "rev-parse", "main^{tree}")
    base = _git(fast_study, "commit-tree", tree, "-p", "main", "-m", "elsewhere")
    _git(fast_study, "update-ref", ref, base)  # the branch went elsewhere, without the keep
    run_study(study, ReplayProposer(write_replay([])), StrictJudge(), RunOptions(),
              policy=islands)  # fmt: skip
    head = _git(fast_study, "rev-parse", ref)
    assert head != last  # a merge commit carrying the keep, on top of what the branch had
    assert _git(fast_study, "show", f"{ref}:value.txt") == "score: 3"
    for commit in (last, base):
        done = subprocess.run(["git", "merge-base", "--is-ancestor", commit, head], cwd=fast_study)
        assert done.returncode == 0
