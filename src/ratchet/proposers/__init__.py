"""Proposers: where candidate changes come from. All return the same ``Proposal``."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, ProposalError
from ..study import ProposerSpec, Study
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
    "spec_for",
]


def make_proposer(
    study: Study,
    kind: str | list[str] | None = None,
    replay: Path | None = None,
    model: str | None = None,
) -> Proposer:
    """The proposers named on the command line, else those of ratchet.toml.

    ratchet.toml has one ``[proposer]`` table or several ``[[proposer]]`` tables;
    several proposers (tables, or ``--proposer llm --proposer sweep``) make an
    ``EnsembleProposer`` whose bandit takes each table's ``weight`` as its prior.
    ``--proposer`` overrides the file: each kind named keeps the settings (and
    weight) of the file's table of that kind, else the first table's settings.
    """
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if len(set(kinds)) < len(kinds):
        raise ConfigError(
            f"--proposer names a proposer twice ({', '.join(kinds)}) — name each once"
        )
    specs = [spec_for(study, k) for k in kinds] if kinds else list(study.proposers)
    if model and "llm" not in [s.kind for s in specs]:
        others = ", ".join(s.kind for s in specs)
        raise ConfigError(f"--model applies to the llm proposer, not {others} — drop --model")
    members = [_member(study, spec, replay, model) for spec in specs]
    if len(members) == 1:
        return members[0]
    weights = {m.name: spec.weight for m, spec in zip(members, specs, strict=True)}
    return EnsembleProposer(members, prior_seconds=study.run.budget, weights=weights)


def spec_for(study: Study, kind: str) -> ProposerSpec:
    """The settings for ``--proposer KIND``: the file's table of that kind, else the first."""
    same = [spec for spec in study.proposers if spec.kind == kind]
    if same:
        return same[0]
    return study.proposer.model_copy(update={"kind": kind, "name": None})


def _member(study: Study, spec: ProposerSpec, replay: Path | None, model: str | None) -> Proposer:
    """One proposer built from its own table: its settings read as the study's ``[proposer]``."""
    own = study if spec is study.proposer else study.model_copy(update={"proposer": spec})
    proposer = _build(own, spec.kind, replay, model if spec.kind == "llm" else None)
    if spec.name:
        proposer.name = spec.name  # what the ledger records and the bandit counts
    return proposer


def _build(study: Study, kind: str, replay: Path | None, model: str | None) -> Proposer:
    """The proposer of ``kind``, configured by ``study.proposer``."""
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
