"""Ratchet: an autonomous research loop that keeps only what is really better.

The names below are the library's public face; everything else is internal.
"""

from .decide.judge import Judge, StrictJudge, Verdict
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
from .models import Context, Experiment, Proposal, Usage
from .proposers.base import Proposer
from .run.loop import RunOptions, RunSummary, run_study
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
