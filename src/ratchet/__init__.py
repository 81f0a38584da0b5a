"""Ratchet: an autonomous research loop that keeps only what is really better.

The names below are the library's public face; everything else is internal.
They are imported on first use: a sealed evaluator that only needs
``ratchet.evaluation`` must not pay for the loop, git and pydantic at every
evaluation (``import ratchet`` eagerly costs ~0.3 s).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: importing typing alone costs an evaluator milliseconds
if TYPE_CHECKING:  # the names resolve lazily (below); type checkers see them here
    from typing import Any

    from .errors import (
        ConfigError,
        ExperimentCrashed,
        ExperimentError,
        ExperimentTimeout,
        GitError,
        LedgerError,
        MetricNotFound,
        ProposalError,
        ProposalsExhausted,
        ProposalUnusable,
        RatchetError,
        SandboxError,
        StorageError,
    )
    from .judge import Judge, StrictJudge, Verdict
    from .loop import RunOptions, RunSummary, run_study
    from .models import Context, Experiment, Proposal, Usage
    from .proposers.base import Proposer
    from .study import Study, load_study

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Study",
    "load_study",
    "Proposal",
    "Context",
    "Experiment",
    "Usage",
    "Proposer",
    "Judge",
    "StrictJudge",
    "Verdict",
    "RunOptions",
    "RunSummary",
    "run_study",
    "RatchetError",
    "ConfigError",
    "GitError",
    "LedgerError",
    "ProposalError",
    "ProposalsExhausted",
    "ProposalUnusable",
    "StorageError",
    "SandboxError",
    "ExperimentError",
    "ExperimentTimeout",
    "ExperimentCrashed",
    "MetricNotFound",
]

_HOME = {
    **dict.fromkeys(
        (
            "ConfigError", "ExperimentCrashed", "ExperimentError", "ExperimentTimeout",
            "GitError", "LedgerError", "MetricNotFound", "ProposalError", "ProposalsExhausted",
            "ProposalUnusable", "RatchetError", "SandboxError", "StorageError",
        ),
        "errors",
    ),
    **dict.fromkeys(("Judge", "StrictJudge", "Verdict"), "judge"),
    **dict.fromkeys(("RunOptions", "RunSummary", "run_study"), "loop"),
    **dict.fromkeys(("Context", "Experiment", "Proposal", "Usage"), "models"),
    "Proposer": "proposers.base",
    "Study": "study",
    "load_study": "study",
}


def __getattr__(name: str) -> Any:
    """``ratchet.Study`` and friends, imported from their module the first time."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'ratchet' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
