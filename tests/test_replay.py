"""Replay proposals from a JSONL file: order, resume, errors, exhaustion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ratchet.errors import ProposalError, ProposalsExhausted
from ratchet.models import Context, Experiment, Proposal
from ratchet.proposers.base import Proposer
from ratchet.proposers.replay import ReplayProposer


def context(history: list[Experiment] | None = None, tag: str = "t") -> Context:
    """A context whose history is ``history``."""
    return Context(
        study_name="toy", tag=tag, program="", files={"train.py": "LR = 0.1\n"},
        parent_commit="c0", metric_name="loss", goal="minimize", history=history or [],
    )  # fmt: skip


def line(n: int, **extra: object) -> str:
    """One replay line that sets LR to ``n``."""
    return json.dumps({"description": f"lr {n}", "edits": {"train.py": f"LR = {n}\n"}, **extra})


def replay_file(tmp_path: Path, lines: list[str]) -> Path:
    """Write ``lines`` to a JSONL file and return its path."""
    path = tmp_path / "proposals.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def row(proposal: Proposal, number: int, tag: str = "t") -> Experiment:
    """The ledger row the loop would record for ``proposal``."""
    return Experiment(
        id=number, tag=tag, parent="c0", commit=None, status="discard", meta=proposal.meta
    )


def test_replays_in_order_skipping_blank_lines(tmp_path: Path) -> None:
    path = replay_file(tmp_path, [line(1), "", "   ", line(2, rationale="why"), line(3)])
    proposer, history, seen = ReplayProposer(path), [], []
    for number in range(3):
        proposal = proposer.propose(context(history))
        seen.append((proposal.description, proposal.meta["replay_line"], proposal.rationale))
        history.append(row(proposal, number))
    assert seen == [("lr 1", 1, ""), ("lr 2", 4, "why"), ("lr 3", 5, "")]
    assert proposal.edits == {"train.py": "LR = 3\n"}


def test_resumes_after_the_highest_line_recorded_under_the_same_tag(tmp_path: Path) -> None:
    path = replay_file(tmp_path, [line(1), line(2), line(3)])
    history = [
        Experiment(
            id=n, tag=tag, parent=None, commit=None, status=status, meta={"replay_line": line}
        )
        for n, (tag, status, line) in enumerate(
            [("t", "keep", 2), ("other", "keep", 3), ("t", "crash", 1)]
        )
    ]
    assert ReplayProposer(path).propose(context(history)).description == "lr 3"
    assert ReplayProposer(path).propose(context(history, tag="fresh")).description == "lr 1"


def test_end_of_file_raises_exhausted(tmp_path: Path) -> None:
    path = replay_file(tmp_path, [line(1)])
    proposer = ReplayProposer(path)
    first = proposer.propose(context())
    with pytest.raises(ProposalsExhausted, match="proposals.jsonl"):
        proposer.propose(context([row(first, 1)]))


def test_bad_json_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = replay_file(tmp_path, [line(1), "", '{"description": "x", "edits": '])
    with pytest.raises(ProposalError, match=r"proposals\.jsonl, line 3: .*not valid JSON") as info:
        ReplayProposer(path).propose(context())
    assert not isinstance(info.value, ProposalsExhausted)
    assert '"edits"' in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('["a", "b"]', "not an object"),
        ('{"description": "x"}', '"edits"'),
        ('{"description": "", "edits": {"a.py": "x"}}', '"description"'),
        ('{"description": "x", "edits": {}}', '"edits"'),
        ('{"description": "x", "edits": {"a.py": 3}}', "file-text strings"),
        ('{"description": "x", "edits": {"a.py": "x"}, "rational": "y"}', "'rational'"),
        ('{"description": "x", "edits": {"a.py": "x"}, "rationale": 1}', '"rationale"'),
    ],
)
def test_wrong_shape_names_the_line_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = replay_file(tmp_path, [line(1), text])
    with pytest.raises(ProposalError, match=r"line 2") as info:
        ReplayProposer(path).propose(context())
    assert problem in str(info.value)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ProposalError, match=r"nope\.jsonl not found — check the path"):
        ReplayProposer(tmp_path / "nope.jsonl").propose(context())


def test_is_a_proposer(tmp_path: Path) -> None:
    assert isinstance(ReplayProposer(tmp_path / "x.jsonl"), Proposer)
    assert ReplayProposer.name == "replay"
