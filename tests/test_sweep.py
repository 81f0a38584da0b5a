"""The sweep proposer: Optuna ask/tell rebuilt from the history, on plain data and real runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import make_repo

from ratchet import ConfigError, RunOptions, load_study, run_study
from ratchet.decide.judge import StrictJudge
from ratchet.errors import ProposalsExhausted
from ratchet.models import Context, Experiment, Proposal
from ratchet.proposers import SweepProposer, make_proposer
from ratchet.proposers.base import Proposer
from ratchet.store.ledger import Ledger
from ratchet.study import SpaceParam

TRAIN = """\
# --- hyperparameters
LR = 0.01  # learning rate
STEPS = 100
WIDTH = 64
OPTIMIZER = "sgd"


def helper(x):
    return 2.5 * x
"""


def context(history: list[Experiment], files: dict[str, str] | None = None, seed: int = 0):
    return Context(
        study_name="toy", tag="t", program="", files=files or {"train.py": TRAIN},
        parent_commit="c1", metric_name="loss", goal="minimize", history=history, seed=seed,
    )  # fmt: skip


def baseline(metric: float = 1.0) -> Experiment:
    return Experiment(id=1, tag="t", parent=None, commit="c1", status="baseline", metric=metric)


def ran(proposal: Proposal, number: int, status: str, metric: float | None) -> Experiment:
    return Experiment(
        id=number, tag="t", parent="c1", commit=f"c{number}", status=status, metric=metric,
        description=proposal.description, meta=proposal.meta,
    )  # fmt: skip


def values(proposal: Proposal) -> dict[str, object]:
    """The module-level constants of the proposed train.py."""
    tree = ast.parse(proposal.edits["train.py"])
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def test_auto_space_covers_the_hyperparameters_not_the_function_body() -> None:
    proposal = SweepProposer().propose(context([baseline()]))
    assert set(proposal.meta["params"]) == {"LR", "STEPS", "WIDTH"}
    new = values(proposal)
    assert 0.001 <= new["LR"] <= 0.1 and 25 <= new["STEPS"] <= 400
    assert new["WIDTH"] in (16, 32, 64, 128, 256) and new["OPTIMIZER"] == "sgd"
    text = proposal.edits["train.py"]
    assert "2.5 * x" in text and "# learning rate" in text


def test_never_runs_out_and_learns_from_the_told_values() -> None:
    """Loss is (log10 LR + 3)^2: after 40 told trials the asks crowd near LR = 1e-3."""
    import math

    sweep, history = SweepProposer(), [baseline(metric=1.0)]
    for number in range(2, 42):
        proposal = sweep.propose(context(history, seed=number))
        lr = values(proposal)["LR"]
        history.append(ran(proposal, number, "discard", (math.log10(lr) + 3) ** 2))
    late = [abs(math.log10(e.meta["params"]["LR"]) + 3) for e in history[-10:]]
    early = [abs(math.log10(e.meta["params"]["LR"]) + 3) for e in history[1:11]]
    assert sorted(late)[5] < sorted(early)[5] / 2  # the median distance halves at least
    assert len({e.description for e in history[1:]}) == 40


def test_failures_are_told_as_failed_trials_and_the_space_is_kept() -> None:
    sweep, history = SweepProposer(), [baseline()]
    first = sweep.propose(context(history))
    history += [ran(first, 2, "crash", None), ran(first, 3, "rejected", None)]
    moved = TRAIN.replace("STEPS = 100", "STEPS = 300")  # a new incumbent: ranges stay put
    second = sweep.propose(context(history, {"train.py": moved}, seed=5))
    assert second.meta["space"] == first.meta["space"]
    assert second.meta["params"] != first.meta["params"]


def test_a_run_that_broke_a_constraint_is_told_as_failed() -> None:
    from ratchet.proposers.sweep import _trials

    sweep = SweepProposer()
    first = sweep.propose(context([baseline()]))
    broke = Experiment(
        id=2, tag="t", parent="c1", commit="c2", status="discard", metric=0.01,
        meta={**first.meta, "violated": 'memory_gb = 50 violates "memory_gb <= 40"'},
    )  # fmt: skip
    history = [baseline(), broke]
    dists, origin = sweep._space(context(history), sweep._targets({"train.py": TRAIN}))
    states = [t.state.name for t in _trials(context(history), dists, origin)]
    assert states == ["COMPLETE", "FAIL"]  # the baseline, then the violating run


def test_equal_contexts_give_equal_proposals() -> None:
    ctx = context([baseline()], seed=3)
    assert SweepProposer().propose(ctx) == SweepProposer().propose(ctx)


def test_declared_space_with_ints_logs_and_categoricals() -> None:
    space = {
        "LR": SpaceParam(low=1e-4, high=1e-1, log=True),
        "STEPS": SpaceParam.model_validate({"low": 10, "high": 20}),
        "OPTIMIZER": SpaceParam(choices=["sgd", "adam"]),
    }
    seen = set()
    history = [baseline()]
    for number in range(2, 14):
        proposal = SweepProposer(space).propose(context(history, seed=number))
        new = values(proposal)
        assert 1e-4 <= new["LR"] <= 0.1 and isinstance(new["STEPS"], int)
        assert 10 <= new["STEPS"] <= 20 and new["WIDTH"] == 64
        seen.add(new["OPTIMIZER"])
        history.append(ran(proposal, number, "discard", 1.0 + number))
    assert seen == {"sgd", "adam"}


def test_a_declared_name_that_is_not_in_the_code_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\[search.space\] BETA names no literal .*train\.py"):
        SweepProposer({"BETA": SpaceParam(low=0.1, high=0.9)}).propose(context([baseline()]))


def test_a_small_discrete_space_ends_the_run_cleanly() -> None:
    space = {"OPTIMIZER": SpaceParam(choices=["sgd", "adam"])}
    history = [baseline()]
    with pytest.raises(ProposalsExhausted, match="tried every point"):
        for number in range(2, 10):
            proposal = SweepProposer(space).propose(context(history, seed=number))
            history.append(ran(proposal, number, "discard", 2.0))
    assert [e.meta.get("params") for e in history] == [None, {"OPTIMIZER": "adam"}]  # sgd: baseline


def test_only_literals_inside_the_evolve_block_are_swept() -> None:
    source = "SCALE = 3.0\n# EVOLVE-BLOCK-START\nLR = 0.1\n# EVOLVE-BLOCK-END\nSTEPS = 100\n"
    files = {"prog.py": source}
    proposal = SweepProposer(editable=["prog.py:EVOLVE-BLOCK"]).propose(
        context([baseline()], files)
    )
    assert set(proposal.meta["params"]) == {"LR"}
    assert "SCALE = 3.0" in proposal.edits["prog.py"] and "STEPS = 100" in proposal.edits["prog.py"]


def test_is_a_proposer_and_refuses_an_unknown_sampler() -> None:
    assert isinstance(SweepProposer(), Proposer) and SweepProposer.name == "sweep"
    with pytest.raises(ConfigError, match="unknown sampler"):
        SweepProposer(sampler="grid")


QUADRATIC_TOML = """\
[study]
name = "quad"

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

[proposer]
kind = "sweep"

[search]
sampler = "{sampler}"

[search.space]
X = {{ low = -10.0, high = 10.0 }}
"""
SOLVE = "X = 7.0\nprint(f'loss: {(X - 3) ** 2 + 1}')\n"


@pytest.mark.parametrize("sampler", ["tpe", "cmaes"])
def test_real_runs_improve_and_resume_from_the_ledger(tmp_path: Path, sampler: str) -> None:
    files = {"ratchet.toml": QUADRATIC_TOML.format(sampler=sampler), "program.md": "x"}
    root = make_repo(tmp_path / "s", {**files, "solve.py": SOLVE})
    study = load_study(root)
    assert isinstance(make_proposer(study), SweepProposer)
    for _ in range(2):  # the second run rebuilds the Optuna study from the ledger
        run_study(study, make_proposer(study), StrictJudge(), RunOptions(max_experiments=6))
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        exps = ledger.experiments()
    finally:
        ledger.close()
    assert len(exps) == 13 and exps[0].metric == 17.0
    swept = [e for e in exps[1:] if e.meta.get("proposer") == "sweep"]
    assert len(swept) == 12 and all(-10 <= e.meta["params"]["X"] <= 10 for e in swept)
    assert len({e.meta["params"]["X"] for e in swept}) == 12  # no point asked twice
    best = min(e.metric for e in exps if e.metric is not None)
    assert best < 5.0  # |X - 3| < 2 found in 12 trials on [-10, 10]
