"""The search policies, regions, context files and constraints, wired through the real loop.

Every test runs ``run_study`` on a real git repository with the local process
executor (the study is ``cat value.txt``), so the branches, refs and ledger rows
checked here are the ones a user would see.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import FAST_TOML, make_repo, ratchet

from ratchet import RunOptions, load_study, run_study
from ratchet.constraints import broke
from ratchet.decide.judge import StrictJudge
from ratchet.errors import ConfigError
from ratchet.models import Context, Experiment
from ratchet.policies import IslandsPolicy, TreePolicy
from ratchet.proposers import ReplayProposer
from ratchet.proposers.agent import agent_prompt
from ratchet.proposers.ensemble import EnsembleProposer, thompson_pick
from ratchet.proposers.prompt import build_prompt
from ratchet.store import migrations
from ratchet.store.ledger import Ledger


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else f"<rc {done.returncode}>"


def _ancestor(repo: Path, a: str, b: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", a, b], cwd=repo).returncode == 0


def _ledger(root: Path) -> list[Experiment]:
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        return ledger.experiments()
    finally:
        ledger.close()


def _values(*scores: int) -> list[dict]:
    return [{"description": f"score {s}", "edits": {"value.txt": f"score: {s}\n"}} for s in scores]


def _run(study: Path, replay: Path, policy: object = None) -> None:
    run_study(
        load_study(study), ReplayProposer(replay), StrictJudge(), RunOptions(), policy=policy
    )  # type: ignore[arg-type]


def test_tree_builds_on_nodes_that_are_not_the_incumbent(fast_study: Path, write_replay) -> None:
    tree = TreePolicy(goal="minimize", exploration=5.0, debug_probability=0.0,
                      draft_probability=0.0)  # fmt: skip
    _run(fast_study, write_replay(_values(4, 6, 7, 3, 8, 9, 2, 10)), tree)
    exps = _ledger(fast_study)
    by_id = {e.id: e for e in exps}
    proposals = exps[1:]
    assert all(e.parent_id in by_id for e in proposals)
    # the recorded parent is the node whose commit was built on
    assert all(e.parent == by_id[e.parent_id].commit for e in proposals)  # type: ignore[index]
    assert {e.node_kind for e in proposals} == {"improve"}
    # some child was built on a node that was not the best so far (a discard, or an old keep)
    best_before = {}
    best: Experiment = exps[0]
    for e in exps:
        best_before[e.id] = best.id
        if e.status in ("baseline", "keep") and e.metric is not None and e.metric <= best.metric:
            best = e
    assert any(e.parent_id != best_before[e.id] for e in proposals)
    assert any(by_id[e.parent_id].status == "discard" for e in proposals)  # type: ignore[index]


def test_the_tag_branch_keeps_every_kept_commit(fast_study: Path, write_replay) -> None:
    # drafts from the baseline make keeps that do not descend from the branch head
    tree = TreePolicy(goal="minimize", debug_probability=0.0, draft_probability=1.0)
    _run(fast_study, write_replay(_values(4, 3, 2, 1)), tree)
    exps = _ledger(fast_study)
    kept = [e for e in exps if e.status == "keep"]
    assert [e.metric for e in kept] == [4.0, 3.0, 2.0, 1.0]
    assert {e.parent for e in kept} == {exps[0].commit}  # every keep built on the baseline
    head = _git(fast_study, "rev-parse", "ratchet/main")
    for e in kept:
        assert _ancestor(fast_study, e.commit, head), f"keep #{e.id} left ratchet/main"
    # the branch's files are the incumbent's, and non-fast-forward keeps became merges
    assert _git(fast_study, "show", "ratchet/main:value.txt") == "score: 1"
    assert len(_git(fast_study, "rev-list", "--merges", "ratchet/main").split()) == 3
    # reopening the tag (crash repair) leaves the branch where it is
    _run(fast_study, write_replay([]), tree)
    assert _git(fast_study, "rev-parse", "ratchet/main") == head


def test_islands_have_their_own_branches_that_only_fast_forward(
    fast_study: Path, write_replay
) -> None:
    islands = IslandsPolicy(goal="minimize", islands=2, migrate_every=100, stagnation=100)
    _run(fast_study, write_replay(_values(4, 3, 2, 1, 9, 0)), islands)
    exps = _ledger(fast_study)
    proposals = exps[1:]
    assert [e.island for e in proposals] == [0, 1, 0, 1, 0, 1]
    for k in (0, 1):
        ref = f"refs/heads/ratchet-island/main/{k}"
        mine = [e for e in proposals if e.island == k and e.status == "keep"]
        assert mine, f"island {k} kept nothing"
        assert _git(fast_study, "rev-parse", ref) == mine[-1].commit  # fast-forwards only
        log = _git(fast_study, "reflog", "show", "--format=%H", ref).split()
        assert log[0] == mine[-1].commit and len(log) == len(mine)
        assert all(_ancestor(fast_study, old, new) for new, old in pairwise(log))
        # each island built on its own incumbent: the parent of a keep is the island's last keep
        assert [e.parent_id for e in mine[1:]] == [e.id for e in mine[:-1]]
    head = _git(fast_study, "rev-parse", "ratchet/main")
    assert all(_ancestor(fast_study, e.commit, head) for e in proposals if e.status == "keep")


def _region_study(tmp_path: Path, program: str) -> Path:
    toml = FAST_TOML.replace('editable = ["value.txt"]',
                             'editable = ["prog.py:EVOLVE-BLOCK"]\ncontext = ["check.sh"]')
    toml = toml.replace('protected = ["check.sh"]', "protected = []")
    toml = toml.replace('command = "cat value.txt"', 'command = "python prog.py"')
    return make_repo(tmp_path / "region", {
        "ratchet.toml": toml, "program.md": "Lower the score.\n", "prog.py": program,
        "check.sh": "echo reference\n",
    })  # fmt: skip


PROG = """\
A = 1
# EVOLVE-BLOCK-START
B = 5
# EVOLVE-BLOCK-END
print(f"score: {A * B}")
"""


def test_edits_outside_a_region_or_to_a_context_file_are_rejected(
    tmp_path: Path, write_replay
) -> None:
    study = _region_study(tmp_path, PROG)
    replay = write_replay([
        {"description": "outside", "edits": {"prog.py": PROG.replace("A = 1", "A = 0")}},
        {"description": "context", "edits": {"check.sh": "echo changed\n"}},
        {"description": "inside", "edits": {"prog.py": PROG.replace("B = 5", "B = 2")}},
    ])  # fmt: skip
    seen: list[Context] = []
    proposer = ReplayProposer(replay)
    original = proposer.propose
    proposer.propose = lambda ctx: seen.append(ctx) or original(ctx)  # type: ignore[method-assign]
    run_study(load_study(study), proposer, StrictJudge(), RunOptions())
    base, outside, context, inside = _ledger(study)
    assert outside.status == "rejected" and "prog.py line 1, outside the EVOLVE-BLOCK" in (
        outside.reason
    )
    assert context.status == "rejected"
    assert context.reason == "policy: check.sh is a read-only context file of this study"
    assert (inside.status, inside.metric) == ("keep", 2.0)
    # the LLM prompt shows the context file read-only and says which lines may change
    assert seen[0].readonly == {"check.sh": "echo reference\n"}
    prompt = build_prompt(seen[0], 32000).user
    assert "# Read-only context (do not edit these)\n\n## check.sh" in prompt
    assert "In prog.py only the lines between `EVOLVE-BLOCK-START`" in prompt
    task = agent_prompt(seen[0], load_study(study))
    assert "Read-only context, worth reading, never to be edited: check.sh." in task
    assert "In prog.py change only the lines between the `EVOLVE-BLOCK-START`" in task


def test_unbalanced_markers_fail_at_load_naming_the_file(tmp_path: Path) -> None:
    study = _region_study(tmp_path, PROG.replace("# EVOLVE-BLOCK-END\n", ""))
    with pytest.raises(ConfigError, match=r"ratchet.toml: prog.py, line 2: EVOLVE-BLOCK-START"):
        load_study(study)


def test_a_violated_constraint_turns_a_keep_into_a_discard(tmp_path: Path, write_replay) -> None:
    toml = FAST_TOML.replace('goal = "minimize"', 'goal = "minimize"\nconstraints = ["mem <= 10"]')
    study = make_repo(tmp_path / "c", {
        "ratchet.toml": toml, "program.md": "x\n", "value.txt": "score: 5\nmem: 8\n",
        "check.sh": "echo protected\n",
    })  # fmt: skip
    replay = write_replay([
        {"description": "fat", "edits": {"value.txt": "score: 1\nmem: 12\n"}},
        {"description": "lean", "edits": {"value.txt": "score: 3\nmem: 9\n"}},
    ])  # fmt: skip
    _run(study, replay)
    _, fat, lean = _ledger(study)
    assert fat.status == "discard" and fat.reason.startswith(
        'constraint: mem = 12 violates the constraint "mem <= 10"'
    )
    assert broke(fat.reason) and lean.status == "keep"
    assert _git(study, "show", "ratchet/main:value.txt") == "score: 3\nmem: 9"


def test_a_bad_constraint_is_a_config_error(tmp_path: Path) -> None:
    toml = FAST_TOML.replace('goal = "minimize"', 'goal = "minimize"\nconstraints = ["mem ~ 1"]')
    study = make_repo(tmp_path / "c", {
        "ratchet.toml": toml, "program.md": "x\n", "value.txt": "score: 5\n", "check.sh": "x\n",
    })  # fmt: skip
    with pytest.raises(ConfigError, match=r"ratchet.toml: \[metric\] constraints: 'mem ~ 1'"):
        load_study(study)


def test_log_tree_draws_the_lineage(fast_study: Path, write_replay) -> None:
    tree = TreePolicy(goal="minimize", debug_probability=0.0, draft_probability=1.0)
    _run(fast_study, write_replay(_values(4, 3)), tree)
    done = ratchet("log", "--tree", str(fast_study))
    assert done.returncode == 0, done.stderr
    base, first, second = _ledger(fast_study)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    rows = [next(line for line in lines if f"#{e.id} " in line) for e in (base, first, second)]
    indent = [len(r) - len(r.lstrip(" │├└─")) for r in rows]
    assert indent[0] < indent[1] == indent[2]  # both drafts are children of the baseline
    assert "keep" in rows[1] and "score 4" in rows[1]
    listed = json.loads(ratchet("log", "--json", str(fast_study)).stdout)
    assert [(r["parent_id"], r["node_kind"]) for r in listed] == [
        (None, ""), (base.id, "draft"), (base.id, "draft"),
    ]  # fmt: skip


def test_a_ledger_from_the_previous_schema_gains_the_lineage_columns(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(db, upto=migrations.LATEST - 1)
    db.execute(
        "INSERT INTO experiments (tag, parent, commit_sha, description, rationale, meta,"
        " input_tokens, output_tokens, cost_usd, log_dir, created_at)"
        " VALUES ('main', NULL, 'abc', 'baseline', '', '{}', 0, 0, 0, '', 0)"
    )
    db.close()
    ledger = Ledger(path)
    try:
        (old,) = ledger.experiments()
        assert (old.parent_id, old.island, old.node_kind) == (None, None, "")
        new = ledger.start(tag="main", parent="abc", commit="def", description="x",
                           parent_id=old.id, island=1, node_kind="debug")  # fmt: skip
        assert (ledger.get(new).parent_id, ledger.get(new).island) == (old.id, 1)
        assert ledger.get(new).node_kind == "debug"
    finally:
        ledger.close()


def test_a_debug_step_builds_on_the_crash_and_shows_its_failure(
    fast_study: Path, write_replay
) -> None:
    tree = TreePolicy(goal="minimize", debug_probability=1.0, draft_probability=0.0)
    replay = write_replay([
        {"description": "broken", "edits": {"value.txt": "no number here\n"}},
        {"description": "repaired", "edits": {"value.txt": "score: 4\n"}},
    ])  # fmt: skip
    seen: list[Context] = []
    proposer = ReplayProposer(replay)
    original = proposer.propose
    proposer.propose = lambda ctx: seen.append(ctx) or original(ctx)  # type: ignore[method-assign]
    run_study(load_study(fast_study), proposer, StrictJudge(), RunOptions(), policy=tree)
    base, broken, repaired = _ledger(fast_study)
    assert broken.status == "crash" and broken.node_kind == "improve"
    assert (repaired.node_kind, repaired.parent_id) == ("debug", broken.id)
    assert repaired.parent == broken.commit  # built on the crashed commit, judged against best
    assert (repaired.status, repaired.metric) == ("keep", 4.0)
    assert seen[1].last_failure_log == broken.reason[-2000:] and broken.reason
    assert seen[1].files == {"value.txt": "no number here\n"}


def test_an_ensemble_takes_turns_and_status_shows_each_member(
    fast_study: Path, tmp_path: Path
) -> None:
    members = []
    for who, scores in (("good", (4, 3)), ("poor", (6, 7, 8))):
        path = tmp_path / f"{who}.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in _values(*scores)))
        member = ReplayProposer(path)
        member.name = who
        members.append(member)
    ensemble = EnsembleProposer(members, prior_seconds=10.0)
    run_study(load_study(fast_study), ensemble, StrictJudge(), RunOptions())
    exps = _ledger(fast_study)[1:]
    assert len(exps) == 5 and {e.proposer for e in exps} == {"good", "poor"}
    assert all(e.proposer == "good" for e in exps if e.status == "keep")
    status = ratchet("status", str(fast_study)).stdout
    assert "  good     2 keeps of 2 experiments" in status
    assert "  poor     0 keeps of 3 experiments" in status
    twice = ratchet("run", str(fast_study), "--proposer", "mutate", "--proposer", "mutate")
    assert twice.returncode == 2 and "names a proposer twice" in twice.stderr
    both = ratchet("run", str(fast_study), "--proposer", "replay", "--proposer", "mutate",
                   "--replay", str(tmp_path / "good.jsonl"), "--max-experiments", "1")  # fmt: skip
    assert both.returncode == 0, both.stderr  # the CLI builds the ensemble


def test_thompson_sampling_favours_more_keeps_per_second() -> None:
    rng = random.Random(0)
    picks = [thompson_pick([(8, 100.0), (1, 100.0), (8, 800.0)], rng, 10.0) for _ in range(300)]
    assert picks.count(0) > 200 and picks.count(1) + picks.count(2) > 0  # exploring still
