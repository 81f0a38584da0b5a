"""Plain value objects passed across Ratchet's seams.

Every proposer returns a ``Proposal``; every proposer receives a ``Context``;
the ledger hands back ``Experiment`` records. They are dataclasses with no
behaviour beyond small derived properties, so any part can be tested with
plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "STATUSES",
    "FINAL_STATUSES",
    "Status",
    "Goal",
    "Usage",
    "Proposal",
    "Experiment",
    "Context",
]

Status = Literal[
    "running",
    "baseline",
    "keep",
    "discard",
    "crash",
    "timeout",
    "pruned",
    "rejected",
    "interrupted",
    "remeasure",  # a re-measurement of the incumbent's commit (noise-aware drift check)
    "unconfirmed",  # judged better, but [confirm] disagreed and revert = true: not kept
]
STATUSES: tuple[str, ...] = get_args(Status)
FINAL_STATUSES: tuple[str, ...] = STATUSES[1:]
Goal = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Usage:
    """Tokens and money a proposer spent on one proposal (zero for offline proposers)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Proposal:
    """One candidate change, whatever produced it.

    ``edits`` maps a path relative to the study directory to the file's new
    full text. ``meta`` is proposer-specific JSON-able data stored in the
    ledger (the mutator keeps its list of (location, value) changes there so
    it can rebuild its memory after a restart).
    """

    description: str
    edits: dict[str, str]
    rationale: str = ""
    usage: Usage = field(default_factory=Usage)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    """One ledger row: an experiment and, once decided, its outcome."""

    id: int
    tag: str
    parent: str | None
    commit: str | None
    status: str
    metric: float | None = None
    samples: list[float] = field(default_factory=list)
    extras: dict[str, float] = field(default_factory=dict)
    description: str = ""
    rationale: str = ""
    reason: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    created_at: float = 0.0
    duration_s: float = 0.0
    log_dir: str = ""


@dataclass(frozen=True)
class Context:
    """What a proposer sees when asked for the next change.

    ``files`` are the editable files at the parent commit (path relative to
    the study directory → text). ``history`` is every earlier experiment of
    this study, oldest first, across tags, so memory survives restarts.
    """

    study_name: str
    tag: str
    program: str
    files: dict[str, str]
    parent_commit: str
    metric_name: str
    goal: Goal
    history: list[Experiment] = field(default_factory=list)
    incumbent: Experiment | None = None
    last_failure_log: str = ""
    journal: str = ""  # compact lessons from earlier experiments, most relevant first
    workdir: str = ""  # the study directory inside the candidate worktree (agent proposers)
    seed: int = 0
