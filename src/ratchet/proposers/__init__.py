"""Proposers: where candidate changes come from. All return the same ``Proposal``."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, ProposalError
from ..study import Study
from .agent import AgentProposer, make_agent_proposer
from .base import Proposer
from .ensemble import EnsembleProposer
from .llm import LLMProposer, make_llm_proposer
from .mutate import MutateProposer
from .replay import ReplayProposer
from .sweep import SweepProposer

__all__ = [
    "Proposer",
    "AgentProposer",
    "LLMProposer",
    "MutateProposer",
    "ReplayProposer",
    "SweepProposer",
    "EnsembleProposer",
    "make_proposer",
]


def make_proposer(
    study: Study,
    kind: str | list[str] | None = None,
    replay: Path | None = None,
    model: str | None = None,
) -> Proposer:
    """The proposer named on the command line, else the one in ``[proposer] kind``.

    Several names (``--proposer llm --proposer sweep``) make an ``EnsembleProposer``.
    """
    if isinstance(kind, list) and len(kind) > 1:
        if len(set(kind)) < len(kind):
            raise ConfigError(
                f"--proposer names a proposer twice ({', '.join(kind)}) — name each once"
            )
        if model and "llm" not in kind:
            raise ConfigError("--model applies to the llm proposer, not these — drop --model")
        members = [make_proposer(study, k, replay, model if k == "llm" else None) for k in kind]
        return EnsembleProposer(members, prior_seconds=study.run.budget)
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    kind = kind or study.proposer.kind
    if model and kind != "llm":
        raise ConfigError(f"--model applies to the llm proposer, not {kind} — drop --model")
    if kind == "mutate":
        return MutateProposer(max_changes=study.proposer.max_changes, editable=study.editable)
    if kind == "sweep":
        search = study.search
        return SweepProposer(search.space, sampler=search.sampler, editable=study.editable)
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
    if kind == "agent":
        return make_agent_proposer(study)
    if kind == "llm":
        return make_llm_proposer(study, model)
    raise ProposalError(
        f"the {kind} proposer is not part of this version yet"
        " — pass --proposer mutate or sweep (offline) or --proposer replay --replay FILE"
    )
