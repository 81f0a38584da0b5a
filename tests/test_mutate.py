"""The offline mutator: which literals it finds, how it edits them, what it remembers."""

from __future__ import annotations

import ast
import io
import random
import re
import tokenize

import pytest

from ratchet.errors import ProposalError, ProposalsExhausted
from ratchet.models import Context, Experiment, Proposal
from ratchet.proposers.base import Proposer
from ratchet.proposers.mutate import MutateProposer, find_literals, format_number, perturb

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
    files: dict[str, str],
    history: list[Experiment] | None = None,
    seed: int = 0,
    parent: str | None = None,
) -> Context:
    """A context for the study "toy": the parent is ``parent``, else the history's incumbent."""
    kept = [e.commit for e in history or [] if e.status in ("baseline", "keep") and e.commit]
    kept += [parent] if parent else []
    return Context(
        study_name="toy",
        tag="t",
        program="",
        files=files,
        parent_commit=kept[-1] if kept else "c0",
        metric_name="loss",
        goal="minimize",
        history=history or [],
        seed=seed,
    )


def record(proposal: Proposal | Experiment, status: str, number: int) -> Experiment:
    """The ledger row the loop would write for ``proposal``."""
    return Experiment(
        id=number, tag="t", parent="c0", commit=f"c{number}", status=status,
        metric=1.0, description=proposal.description, meta=proposal.meta,
    )  # fmt: skip


def tried_pairs(proposal: Proposal | Experiment) -> set[tuple[str, str, int, float]]:
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


def test_never_runs_out_and_never_repeats_a_value_from_the_same_parent() -> None:
    proposer, history, seen = MutateProposer(), [], set()
    for number in range(1, 201):
        proposal = proposer.propose(context({"train.py": SMALL}, history))
        pairs = tried_pairs(proposal)
        assert not pairs & seen
        seen |= pairs
        history.append(record(proposal, "discard", number))
    assert len(seen) >= 200


def test_a_new_parent_may_try_values_the_old_parent_tried() -> None:
    old = [record(MutateProposer().propose(context({"train.py": SMALL}, seed=s)), "discard", s)
           for s in range(1, 40)]  # fmt: skip
    new_parent = Context(**{**context({"train.py": SMALL}).__dict__, "parent_commit": "c9"})
    repeated = 0
    for seed in range(40):
        ctx = Context(**{**new_parent.__dict__, "history": old, "seed": seed})
        proposal = MutateProposer().propose(ctx)
        repeated += bool(tried_pairs(proposal) & {p for e in old for p in tried_pairs(e)})
    assert repeated > 0  # memory is per parent: c0's tried values do not block c9


def test_memory_comes_from_history_so_a_new_instance_does_not_repeat() -> None:
    first = MutateProposer().propose(context({"train.py": SMALL}))
    history = [record(first, "crash", 1)]
    for seed in range(30):
        again = MutateProposer().propose(context({"train.py": SMALL}, history, seed=seed))
        assert not tried_pairs(again) & tried_pairs(first)


def test_no_numeric_literal_ends_the_run_with_one_sentence() -> None:
    files = {"train.py": "print('hello')\n", "notes.md": "LR = 0.1\n", "bad.py": "X = (1.5\n"}
    with pytest.raises(
        ProposalsExhausted, match=r"no numeric literal .*\(bad\.py, notes\.md, train\.py\)"
    ) as caught:
        MutateProposer().propose(context(files))
    message = str(caught.value)
    assert "doctor" not in message and message.count(". ") == 0 and message.endswith(".")


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


def _lr_moves(history: list[Experiment], parent: str | None = None) -> list[int]:
    """Directions (+1 up, -1 down) of the LR changes over 300 seeds."""
    moves = []
    for seed in range(300):
        ctx = context({"train.py": ADAPT}, history, seed=seed, parent=parent)
        proposal = MutateProposer().propose(ctx)
        for change in proposal.meta["changes"]:
            if change["name"] == "LR":
                moves.append(1 if change["factor"] > 1 else -1)
    return moves


def test_a_kept_increase_favours_that_literal_and_direction() -> None:
    fresh, adapted = _lr_moves([]), _lr_moves(_lr_kept_up())
    assert len(adapted) > 1.5 * len(fresh)
    assert sum(m > 0 for m in adapted) > 0.65 * len(adapted)
    assert 0.35 < sum(m > 0 for m in fresh) / len(fresh) < 0.65


def test_a_sibling_that_went_up_does_not_steer_a_return_to_the_parent() -> None:
    """A tree policy back at c0 after c1 (LR up) was kept: LR is not pushed up again."""
    moves = _lr_moves(_lr_kept_up(), parent="c0")
    assert 0.35 < sum(m > 0 for m in moves) / len(moves) < 0.65


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


def new_values(source: str, name: str, draws: int = 200) -> set[float]:
    """The values ``perturb`` gives the literal ``name`` over many draws."""
    lit = next(x for x in find_literals("train.py", source) if x.name == name)
    rng = random.Random(0)
    found = (perturb(lit, 0.5, 0, rng) for _ in range(draws))
    return {c.value for c in found if c is not None}


def test_power_of_two_sizes_stay_powers_of_two() -> None:
    source = "HEAD_DIM = 32\nSTEPS = 2656\nDEGREE = 5\n"
    head = {int(v) for v in new_values(source, "HEAD_DIM")}
    assert len(head) > 2 and all(v & (v - 1) == 0 for v in head)
    assert 4 in {int(v) for v in new_values(source, "DEGREE")}  # small ints move by one too
    steps = new_values(source, "STEPS")
    assert len(steps) > 50 and all(v == int(v) and v >= 1 for v in steps)  # continuous


def test_float_steps_are_continuous_not_a_ladder() -> None:
    values = new_values("LR = 0.01\n", "LR", draws=300)
    assert len(values) > 150  # a ladder had 14
    factors = sorted(v / 0.01 for v in values)
    assert factors[0] < 0.5 and factors[-1] > 2 and any(0.95 < f < 1.05 for f in factors)


def test_zero_hyperparameters_move_and_structural_zeros_do_not() -> None:
    source = "WEIGHT_DECAY = 0.0\nWARMUP = 0\ncount = 0\n\n\ndef f(x, floor=0.0):\n    y = 0.0\n"
    names = {lit.name for lit in find_literals("train.py", source)}
    assert names == {"WEIGHT_DECAY", "WARMUP", "floor"}
    decay = new_values(source, "WEIGHT_DECAY")
    assert decay and all(1e-4 <= v <= 0.1 for v in decay)
    assert new_values(source, "WARMUP") == {1.0, 2.0}


def test_only_literals_inside_the_evolve_block_change() -> None:
    source = (
        "SCALE = 3.0\n# EVOLVE-BLOCK-START\nLR = 0.1\nSTEPS = 100\n# EVOLVE-BLOCK-END\n"
        "def score(x):\n    return 2.5 * x\n"
    )
    proposer = MutateProposer(editable=["prog.py:EVOLVE-BLOCK"])
    names = set()
    for seed in range(40):
        proposal = proposer.propose(context({"prog.py": source}, seed=seed))
        names |= {c["name"] for c in proposal.meta["changes"]}
    assert names == {"LR", "STEPS"}
    empty = "SCALE = 3.0\n# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n"
    with pytest.raises(ProposalsExhausted, match="no numeric literal"):
        proposer.propose(context({"prog.py": empty}))
