"""The offline mutator: which literals it finds, how it edits them, what it remembers."""

from __future__ import annotations

import ast
import io
import re
import tokenize

import pytest

from ratchet.errors import ProposalError
from ratchet.models import Context, Experiment, Proposal
from ratchet.proposers.base import Proposer
from ratchet.proposers.mutate import MutateProposer, find_literals, format_number

REALISTIC = '''\
"""A tiny training script."""
import math
import random

# --- hyperparameters
LR = 3e-4  # learning rate
BATCH_SIZE = 64  # samples per step
WEIGHT_DECAY = 0.01
SIZES = [128, 64]
N_LAYERS = 1
warmup, decay = 0.1, 0.99
CONFIG = {"dropout": 0.2}
MASK = 0xFF
X_MAX = 3.0  # fixed by the evaluation (ratchet: fixed)


def schedule(step, total=1000, floor=-0.5, *, gamma=0.9):
    x = data[0] + data[1:3][-1]
    for i in range(10):
        pass
    if step % 100 == 0:
        print(f"{step:5d} {x:.3f}", round(x, 4))
    z = 0.5 * x ** 2
    count = 1
    return max(floor, gamma * math.cos(math.pi * step / total))


def main():
    random.seed(42)
    opt = make(lr=LR, betas=(0.9, 0.95), axis=-1)


if __name__ == "__main__":
    main(steps=500)
'''

SMALL = "LR = 0.01  # learning rate\nSTEPS = 100\n"


def context(
    files: dict[str, str], history: list[Experiment] | None = None, seed: int = 0
) -> Context:
    """A context for the study "toy" with the given editable files."""
    return Context(
        study_name="toy",
        tag="t",
        program="",
        files=files,
        parent_commit="c0",
        metric_name="loss",
        goal="minimize",
        history=history or [],
        seed=seed,
    )


def record(proposal: Proposal, status: str, number: int) -> Experiment:
    """The ledger row the loop would write for ``proposal``."""
    return Experiment(
        id=number, tag="t", parent="c0", commit=f"c{number}", status=status,
        metric=1.0, description=proposal.description, meta=proposal.meta,
    )  # fmt: skip


def tried_pairs(proposal: Proposal) -> set[tuple[str, str, int, float]]:
    """(path, name, line, new value) for each change of a proposal."""
    return {
        (c["path"], c["name"], c["line"], float(ast.literal_eval(c["new"])))
        for c in proposal.meta["changes"]
    }


def test_finds_hyperparameters_and_skips_structural_literals() -> None:
    names = {lit.name: lit.text for lit in find_literals("train.py", REALISTIC)}
    assert names == {
        "LR": "3e-4", "BATCH_SIZE": "64", "WEIGHT_DECAY": "0.01", "SIZES[0]": "128",
        "SIZES[1]": "64", "N_LAYERS": "1", "warmup": "0.1", "decay": "0.99",
        "dropout": "0.2", "total": "1000", "floor": "-0.5", "gamma": "0.9",
        "z": "0.5", "betas[0]": "0.9", "betas[1]": "0.95",
    }  # fmt: skip


def test_hyperparameter_positions_rank_above_body_literals() -> None:
    tiers = {lit.name: lit.tier for lit in find_literals("train.py", REALISTIC)}
    assert tiers["LR"] == tiers["total"] == tiers["betas[0]"] == "hyper"
    assert tiers["z"] == "assign"


def test_file_that_does_not_parse_yields_nothing() -> None:
    assert find_literals("broken.py", "LR = (0.1\n") == []


@pytest.mark.parametrize(
    ("value", "template", "expected"),
    [
        (6e-4, "3e-4", "6e-4"),
        (1.5e-3, "1E-3", "1.5E-3"),
        (0.015, "0.01", "0.015"),
        (1e-5, "0.001", "0.00001"),
        (2.0, "1.0", "2.0"),
        (128, "64", "128"),
        (20000, "10_000", "20_000"),
        (-0.5, "-0.25", "-0.5"),
        (0.0281249, "0.0225", "0.0281"),
    ],
)
def test_format_number_keeps_the_literal_style(value: float, template: str, expected: str) -> None:
    assert format_number(value, template) == expected


def tokens(text: str) -> list[tuple[int, str]]:
    """(type, text) of every token, comments included."""
    return [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(text).readline)]


def test_edit_parses_and_changes_only_the_chosen_spans() -> None:
    for seed in range(40):
        proposal = MutateProposer().propose(context({"train.py": REALISTIC}, seed=seed))
        new, changes = proposal.edits["train.py"], proposal.meta["changes"]
        ast.parse(new)
        before, after = tokens(REALISTIC), tokens(new)
        assert len(before) == len(after)
        diffs = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert all(a[0] == b[0] == tokenize.NUMBER for a, b in diffs)
        assert {(a[1], b[1]) for a, b in diffs} == {
            (c["old"].lstrip("-"), c["new"].lstrip("-")) for c in changes
        }
        touched = {c["line"] for c in changes}
        for number, (old, line) in enumerate(
            zip(REALISTIC.splitlines(), new.splitlines(), strict=True), 1
        ):
            assert old == line or number in touched


def test_comments_survive_the_edit() -> None:
    proposal = MutateProposer().propose(context({"train.py": SMALL}))
    assert "# learning rate" in proposal.edits["train.py"]


def test_description_names_each_change_with_file_and_line() -> None:
    pattern = re.compile(r"^\S+ \S+ → \S+ \(train\.py:(\d+)\)$")
    for seed in range(20):
        proposal = MutateProposer().propose(context({"train.py": REALISTIC}, seed=seed))
        parts = proposal.description.split("; ")
        assert len(parts) == len(proposal.meta["changes"])
        for part, change in zip(parts, proposal.meta["changes"], strict=True):
            match = pattern.match(part)
            assert match and int(match.group(1)) == change["line"]
            assert part.startswith(f"{change['name']} {change['old']} → {change['new']}")
        assert proposal.rationale.endswith(".")


def test_sign_is_kept_and_zero_never_reached() -> None:
    source = "A = -0.5\nB = 2\nC = -3\nD = 1e-3\nE = 0.9\n"
    for seed in range(60):
        proposal = MutateProposer().propose(context({"train.py": source}, seed=seed))
        for change in proposal.meta["changes"]:
            old, new = ast.literal_eval(change["old"]), ast.literal_eval(change["new"])
            assert new * old > 0
            assert type(new) is type(old)


def test_never_repeats_a_tried_value_until_exhausted() -> None:
    proposer, history, seen = MutateProposer(), [], set()
    with pytest.raises(ProposalError, match="has been tried — use --proposer llm"):
        for number in range(1, 201):
            proposal = proposer.propose(context({"train.py": SMALL}, history))
            pairs = tried_pairs(proposal)
            assert not pairs & seen
            seen |= pairs
            history.append(record(proposal, "discard", number))
    assert 10 < len(history) < 200


def test_memory_comes_from_history_so_a_new_instance_does_not_repeat() -> None:
    first = MutateProposer().propose(context({"train.py": SMALL}))
    history = [record(first, "crash", 1)]
    for seed in range(30):
        again = MutateProposer().propose(context({"train.py": SMALL}, history, seed=seed))
        assert not tried_pairs(again) & tried_pairs(first)


def test_no_numeric_literal_names_the_files_and_the_fix() -> None:
    files = {"train.py": "print('hello')\n", "notes.md": "LR = 0.1\n", "bad.py": "X = (1.5\n"}
    with pytest.raises(
        ProposalError, match=r"no numeric literal .*\(bad\.py, notes\.md, train\.py\)"
    ):
        MutateProposer().propose(context(files))


def test_only_python_files_that_parse_are_edited() -> None:
    files = {"a.py": "X = (1.5\n", "b.txt": "Y = 5\n", "c.py": "LR = 0.1\n"}
    for seed in range(10):
        assert set(MutateProposer().propose(context(files, seed=seed)).edits) == {"c.py"}


def test_max_changes_caps_the_number_of_literals() -> None:
    for seed in range(30):
        proposal = MutateProposer(max_changes=1).propose(
            context({"train.py": REALISTIC}, seed=seed)
        )
        assert len(proposal.meta["changes"]) == 1
    with pytest.raises(ProposalError, match="max_changes"):
        MutateProposer(max_changes=0)


def test_mostly_one_change_sometimes_more() -> None:
    counts = [
        len(MutateProposer().propose(context({"train.py": REALISTIC}, seed=s)).meta["changes"])
        for s in range(120)
    ]
    assert counts.count(1) > 55
    assert 2 in counts and 3 in counts and max(counts) == 3


def test_deterministic_for_equal_contexts() -> None:
    ctx = context({"train.py": REALISTIC}, seed=7)
    assert MutateProposer().propose(ctx) == MutateProposer().propose(ctx)
    others = {
        MutateProposer().propose(context({"train.py": REALISTIC}, seed=s)).description
        for s in range(10)
    }
    assert len(others) > 5


ADAPT = "LR = 0.02\nDROPOUT = 0.2\nINIT = 0.5\nDECAY_STEPS = 300\nWD = 0.003\n"


def _lr_kept_up() -> list[Experiment]:
    """A history where raising LR from 0.01 to 0.02 was kept."""
    change = {"path": "train.py", "line": 1, "name": "LR", "old": "0.01", "new": "0.02"}
    meta = {"changes": [{**change, "factor": 2.0}]}
    return [
        Experiment(id=1, tag="t", parent=None, commit="c0", status="baseline", metric=1.0),
        Experiment(id=2, tag="t", parent="c0", commit="c1", status="keep", metric=0.5, meta=meta),
    ]


def _lr_moves(history: list[Experiment]) -> list[int]:
    """Directions (+1 up, -1 down) of the LR changes over 300 seeds."""
    moves = []
    for seed in range(300):
        proposal = MutateProposer().propose(context({"train.py": ADAPT}, history, seed=seed))
        for change in proposal.meta["changes"]:
            if change["name"] == "LR":
                moves.append(1 if change["factor"] > 1 else -1)
    return moves


def test_a_kept_increase_favours_that_literal_and_direction() -> None:
    fresh, adapted = _lr_moves([]), _lr_moves(_lr_kept_up())
    assert len(adapted) > 1.5 * len(fresh)
    assert sum(m > 0 for m in adapted) > 0.65 * len(adapted)
    assert 0.35 < sum(m > 0 for m in fresh) / len(fresh) < 0.65


def test_step_grows_after_a_keep_and_shrinks_after_discards() -> None:
    def mean_step(history: list[Experiment]) -> float:
        steps = [
            c["step"]
            for s in range(200)
            for c in MutateProposer()
            .propose(context({"train.py": ADAPT}, history, seed=s))
            .meta["changes"]
            if c["name"] == "LR"
        ]
        return sum(steps) / len(steps)

    tried = ["0.04", "0.01", "0.06", "0.00667", "0.2", "0.002", "0.03", "0.0133"]
    change = {"path": "train.py", "line": 1, "name": "LR", "old": "0.02", "factor": 1.0}
    discards = [
        Experiment(
            id=i,
            tag="t",
            parent="c0",
            commit=f"d{i}",
            status="discard",
            metric=2.0,
            meta={"changes": [{**change, "new": new}]},
        )  # fmt: skip
        for i, new in enumerate(tried)
    ]
    assert mean_step(_lr_kept_up()) > mean_step([]) > mean_step(discards)


def test_is_a_proposer() -> None:
    assert isinstance(MutateProposer(), Proposer)
    assert MutateProposer.name == "mutate"


def test_power_of_two_sizes_stay_powers_of_two() -> None:
    from ratchet.proposers.mutate import candidates, find_literals

    source = "HEAD_DIM = 32\nSTEPS = 2656\nDEGREE = 5\n"
    by_name = {lit.name: lit for lit in find_literals("train.py", source)}
    head = {int(c.value) for c in candidates(by_name["HEAD_DIM"])}
    assert head and all(v & (v - 1) == 0 for v in head)
    steps = {int(c.value) for c in candidates(by_name["STEPS"])}
    assert 2655 not in steps and 2657 not in steps  # no +-1 on large ints
    assert 4 in {int(c.value) for c in candidates(by_name["DEGREE"])}  # small ints step by one
