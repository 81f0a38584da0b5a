"""``[[proposer]]`` tables: an ensemble declared in ratchet.toml, each member with its own
settings and a weight that is the bandit's prior; ``--proposer`` overrides the file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import FAST_TOML, make_repo, ratchet

from ratchet import load_study
from ratchet.errors import ConfigError
from ratchet.proposers import EnsembleProposer, MutateProposer, ReplayProposer, make_proposer
from ratchet.proposers.ensemble import thompson_pick
from ratchet.store.ledger import Ledger

SINGLE = '[proposer]\nkind = "replay"\n'
TABLES = """\
[[proposer]]
kind = "replay"
name = "good"
replay = "good.jsonl"
weight = 3

[[proposer]]
kind = "replay"
name = "poor"
replay = "poor.jsonl"

[[proposer]]
kind = "mutate"
max_changes = 1
"""


def _values(*scores: int) -> str:
    return "".join(
        json.dumps({"description": f"score {s}", "edits": {"value.txt": f"score: {s}\n"}}) + "\n"
        for s in scores
    )


def _study(tmp_path: Path, proposers: str) -> Path:
    toml = FAST_TOML.replace(SINGLE, proposers)
    assert toml != FAST_TOML or proposers == SINGLE
    return make_repo(tmp_path / "study", {
        "ratchet.toml": toml, "program.md": "Lower the score.\n", "value.txt": "score: 5\n",
        "check.sh": "echo protected\n", "good.jsonl": _values(4, 3, 2),
        "poor.jsonl": _values(6, 7, 8, 9),
    })  # fmt: skip


def test_tables_build_an_ensemble_whose_members_keep_their_own_settings(tmp_path: Path) -> None:
    study = load_study(_study(tmp_path, TABLES))
    assert [(m.kind, m.name, m.weight) for m in study.proposers] == [
        ("replay", "good", 3.0), ("replay", "poor", 1.0), ("mutate", None, 1.0),
    ]  # fmt: skip
    assert study.proposer.name == "good"  # run-wide keys (max_failures) come from the first
    ensemble = make_proposer(study)
    assert isinstance(ensemble, EnsembleProposer)
    good, poor, mutate = ensemble.members
    assert (good.name, poor.name, mutate.name) == ("good", "poor", "mutate")
    assert isinstance(good, ReplayProposer) and good.path.name == "good.jsonl"
    assert isinstance(poor, ReplayProposer) and poor.path.name == "poor.jsonl"
    assert isinstance(mutate, MutateProposer) and mutate.max_changes == 1
    assert ensemble.weights == {"good": 3.0, "poor": 1.0, "mutate": 1.0}
    # --proposer overrides the file; a named kind keeps its table's settings
    alone = make_proposer(study, ["mutate"])
    assert isinstance(alone, MutateProposer) and alone.max_changes == 1
    pair = make_proposer(study, ["mutate", "sweep"])
    assert isinstance(pair, EnsembleProposer)
    assert [m.name for m in pair.members] == ["mutate", "sweep"]
    # a kind with no table of its own takes the first table's settings, as one [proposer] did
    replay = make_proposer(study, ["replay"])
    assert isinstance(replay, ReplayProposer) and replay.path.name == "good.jsonl"


def test_a_run_from_tables_records_each_member_and_status_shows_keeps_and_cost(
    tmp_path: Path,
) -> None:
    tables = TABLES.replace('kind = "mutate"\nmax_changes = 1\n', 'kind = "sweep"\n')
    root = _study(tmp_path, tables)
    done = ratchet("run", str(root), "--max-experiments", "6")
    assert done.returncode == 0, done.stderr
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        exps = ledger.experiments()[1:]
    finally:
        ledger.close()
    assert len(exps) == 6 and {e.proposer for e in exps} <= {"good", "poor", "sweep"}
    assert {e.proposer for e in exps} >= {"good"}
    status = ratchet("status", str(root)).stdout
    counts = {who: sum(e.proposer == who for e in exps) for who in ("good", "poor", "sweep")}
    keeps = {who: sum(e.proposer == who and e.status == "keep" for e in exps) for who in counts}
    for who, n in counts.items():
        if n:
            assert f"  {who:<8} {keeps[who]} keeps of {n} experiments" in status, status


@pytest.mark.parametrize(
    ("proposers", "expected"),
    [
        ('[proposer]\nkind = "mutate"\n\n[[proposer]]\nkind = "sweep"\n',
         "[proposer] and [[proposer]] are both used — keep one form"),
        ('[[proposer]]\nkind = "sweep"\n\n[proposer]\nkind = "mutate"\n',
         "[proposer] and [[proposer]] are both used — keep one form"),
        ('[[proposer]]\nkind = "mutate"\nweight = 0\n\n[[proposer]]\nkind = "sweep"\n',
         "[[proposer]] table 1 weight must be a positive number, got 0"),
        ('[[proposer]]\nkind = "mutate"\n\n[[proposer]]\nkind = "sweep"\nweight = "lots"\n',
         "[[proposer]] table 2 weight must be a positive number, got 'lots'"),
        ('[[proposer]]\nkind = "mutate"\nweight = inf\n',
         "[[proposer]] table 1 weight must be a positive number, got inf"),
        ('[proposer]\nkind = "mutate"\nweight = 2\n',
         "[proposer] weight only applies to an ensemble"),
        ('[[proposer]]\nkind = "llm"\nmodel = "a"\n\n[[proposer]]\nkind = "llm"\nmodel = "b"\n',
         "two [[proposer]] tables are both named 'llm' — give each its own name"),
        ('[[proposer]]\nkind = "mutate"\n\n[[proposer]]\nkind = "gpt"\n',
         "[[proposer]] table 2 kind = 'gpt' is not allowed"),
    ],
)
def test_bad_tables_are_one_clear_error(tmp_path: Path, proposers: str, expected: str) -> None:
    root = _study(tmp_path, proposers)
    with pytest.raises(ConfigError, match="ratchet.toml: ") as caught:
        load_study(root)
    assert expected in str(caught.value), caught.value
    done = ratchet("run", str(root), "--max-experiments", "1")
    assert done.returncode == 2 and expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (root / ".ratchet" / "ledger.sqlite").exists()  # nothing ran, nothing recorded


def test_weights_are_a_prior_that_evidence_outweighs() -> None:
    rng = random.Random(1)
    fresh = [(0, 0.0), (0, 0.0)]
    even = [thompson_pick(fresh, rng, 10.0) for _ in range(2000)]
    heavy = [thompson_pick(fresh, rng, 10.0, [3.0, 1.0]) for _ in range(2000)]
    assert 900 < even.count(0) < 1100  # equal weights: no preference before any evidence
    assert heavy.count(0) > 1400  # weight 3 vs 1: the first is asked most of the time
    # the light member kept 6 times in 100 s, the heavy one nothing: the evidence wins
    learned = [thompson_pick([(0, 100.0), (6, 100.0)], rng, 10.0, [3.0, 1.0]) for _ in range(2000)]
    assert learned.count(1) > 1700
    # only the ratio matters
    scaled = [thompson_pick(fresh, random.Random(2), 10.0, [30.0, 10.0]) for _ in range(1)]
    assert scaled == [thompson_pick(fresh, random.Random(2), 10.0, [3.0, 1.0])]
