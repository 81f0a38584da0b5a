"""Plain value objects passed across Ratchet's seams.

Every proposer returns a ``Proposal``; every proposer receives a ``Context``;
the ledger hands back ``Experiment`` records. They are dataclasses with no
behaviour beyond small derived properties, so any part can be tested with
plain data.

The rules every part shares are defined here once, so a figure means the same
in the loop, the console, ``status``, the report and the dashboard: the status
groups (``KEPT``, ``RAN``…), "better under the goal" (``gain``, ``better``) and
"the best so far" (``incumbent``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "STATUSES",
    "FINAL_STATUSES",
    "KEPT",
    "MEASURES_COMMIT",
    "JUDGED",
    "FAILED",
    "BROKE",
    "RAN",
    "Note",
    "shown_status",
    "ROUTINE",
    "UNTOLD",
    "NOT_TRIED",
    "gain",
    "better",
    "incumbent",
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

# The status groups, each defined once: every test of a status in Ratchet names one of these.
KEPT = ("baseline", "keep")  # measured commits the branch moved to; the last is the incumbent
MEASURES_COMMIT = (*KEPT, "remeasure")  # rows whose samples all measure their own commit
JUDGED = ("keep", "discard", "unconfirmed")  # candidates measured to the end and judged
FAILED = ("crash", "timeout", "pruned")  # candidates that spent budget and have no metric
BROKE = ("crash", "timeout")  # ended in an error: the log tail is worth showing a proposer
RAN = (*JUDGED, *FAILED)  # candidates that spent budget (rejected ones cost nothing)
ROUTINE = ("baseline", "keep", "discard")  # the reason is the judge's routine explanation
UNTOLD = ("running", "remeasure")  # rows that teach a proposer nothing about a change
NOT_TRIED = ("running", "interrupted", "remeasure")  # never decided, or not a proposal


def gain(value: float, reference: float, goal: str) -> float:
    """How much better ``value`` is than ``reference`` under ``goal`` (negative: worse)."""
    return reference - value if goal == "minimize" else value - reference


def better(value: float, reference: float, goal: str) -> bool:
    """True when ``value`` is strictly better than ``reference`` under ``goal``."""
    return gain(value, reference, goal) > 0


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
    budget_s: float | None = None  # the run phase's budget (None on rows older than it)
    worker: str = ""  # which worker ran it (its worktree), "" before workers were recorded
    host: str = ""  # the machine it ran on
    proposer: str = ""  # what proposed it (mutate, llm, agent, replay, try); "" for measurements
    parent_id: int | None = None  # the experiment it was built on (None: older rows, baseline)
    island: int | None = None  # its lineage under the islands policy
    node_kind: str = ""  # improve, debug or draft: what the search policy asked for
    void: str | None = None  # why a keep was invalidated later (``ratchet invalidate``), if it was


@dataclass(frozen=True)
class Note:
    """A human's steering note (``ratchet note``): shown to proposers from the next prompt on."""

    id: int
    tag: str
    text: str
    created_at: float


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
    readonly: dict[str, str] = field(default_factory=dict)  # [files] context: shown, not edited
    limited: tuple[str, ...] = ()  # editable files whose EVOLVE-BLOCK regions alone may change
    notes: list[Note] = field(default_factory=list)  # the human's notes for this tag, oldest first


def shown_status(exp: Experiment) -> str:
    """The status as people and proposers read it: ``keep (void)`` for an invalidated keep."""
    return f"{exp.status} (void)" if exp.void is not None else exp.status


def incumbent(experiments: Sequence[Experiment]) -> Experiment | None:
    """The best so far: the latest baseline or kept experiment, the head of the branch.

    This is the one definition of "best" (the run summary, the console, ``status``
    and the report all use it): a keep was judged better than its parent with the
    samples at hand, so the latest one is the incumbent even when a noisy mean of an
    earlier keep happens to be lower.

    A keep voided by ``ratchet invalidate`` is skipped, so the incumbent falls back to
    the last valid keep everywhere at once.
    """
    for exp in reversed(experiments):
        if exp.status in KEPT and exp.void is None:
            return exp
    return None
