"""Proposers: where candidate changes come from. All return the same ``Proposal``."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, ProposalError
from ..study import Study
from .base import Proposer
from .mutate import MutateProposer
from .replay import ReplayProposer

__all__ = ["Proposer", "MutateProposer", "ReplayProposer", "make_proposer"]

_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


def make_proposer(study: Study, kind: str | None = None, replay: Path | None = None) -> Proposer:
    """The proposer named on the command line, else the one in ``[proposer] kind``."""
    kind = kind or study.proposer.kind
    if kind == "mutate":
        return MutateProposer(max_changes=study.proposer.max_changes)
    if kind == "replay":
        path = replay or (study.root / study.proposer.replay if study.proposer.replay else None)
        if path is None:
            raise ConfigError(
                "the replay proposer needs a file — pass --replay FILE.jsonl"
                ' or set [proposer] replay = "FILE.jsonl" in ratchet.toml'
            )
        if not path.is_file():
            raise ConfigError(f"replay file {path} not found — check the path given to --replay")
        return ReplayProposer(path)
    if kind == "llm" and not any(os.environ.get(k) for k in _KEYS):
        raise ProposalError(
            "the llm proposer has no key — set OPENAI_API_KEY or ANTHROPIC_API_KEY,"
            " or pass --proposer mutate to use the offline mutator"
        )
    raise ProposalError(
        f"the {kind} proposer is not part of this version yet"
        " — pass --proposer mutate (offline) or --proposer replay --replay FILE"
    )
