"""Every error Ratchet raises on purpose.

The library raises, the command line reports: ``cli.main`` turns any
``RatchetError`` into one sentence and exit code 2. Each message names what
went wrong, where, and how to fix it.

Hierarchy::

    RatchetError
    ├── ConfigError          ratchet.toml or a command-line option is wrong
    ├── GitError             git is missing, or the directory is not a repository
    │   └── CleanupError         a worktree holds something that cannot be deleted
    ├── LedgerError          .ratchet/ledger.sqlite is damaged or unwritable
    ├── StorageError         Ratchet cannot write its own files (a full disk, permissions)
    ├── ProposalError        a proposer cannot start or cannot produce a proposal
    │   ├── ProposalUnusable     an answer arrived but cannot be applied (recorded, not a fault)
    │   └── ProposalsExhausted   a finite proposer has nothing left, or a cost cap was reached
    ├── SandboxError         the requested isolation level is not available
    └── ExperimentError      an experiment failed in a way the loop records
        ├── ExperimentTimeout
        ├── ExperimentCrashed
        └── MetricNotFound
"""

from __future__ import annotations

from .models import Usage

__all__ = [
    "RatchetError",
    "ConfigError",
    "GitError",
    "CleanupError",
    "LedgerError",
    "StorageError",
    "ProposalError",
    "ProposalUnusable",
    "ProposalsExhausted",
    "SandboxError",
    "ExperimentError",
    "ExperimentTimeout",
    "ExperimentCrashed",
    "MetricNotFound",
]


class RatchetError(Exception):
    """Base class: an error whose message is fit to show a user as is."""


class ConfigError(RatchetError):
    """The study's configuration or a command-line option is invalid."""


class GitError(RatchetError):
    """A git operation failed or git is unavailable."""


class CleanupError(GitError):
    """A worktree cannot be emptied (an immutable file, another user's file): the run
    moves it aside and goes on in a fresh one (``workspace.fresh_worktree``)."""


class LedgerError(RatchetError):
    """The ledger cannot be opened, is damaged, or cannot be written."""


class StorageError(RatchetError):
    """Ratchet cannot write one of its own files (a log, a lock): the run stops, and the
    experiment left running is marked interrupted when the same tag is rerun."""


class ProposalError(RatchetError):
    """A proposer cannot start or failed to produce a usable proposal.

    Raised from ``propose``, the loop records the experiment as ``rejected``
    with this message (and the tokens already spent, ``usage``), and stops the
    run after ``[proposer] max_failures`` of them in a row (an endpoint that
    is down should not burn the night).
    """

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


class ProposalUnusable(ProposalError):
    """The proposer answered, but the answer cannot be applied (e.g. a SEARCH that matches
    nothing, after the repair round-trip). Recorded as ``rejected``; does not count
    towards the consecutive-failure stop, since the proposer itself works."""


class ProposalsExhausted(ProposalError):
    """A finite proposer (replay) has no proposals left, or a cap (cost, tokens) was
    reached; the loop ends cleanly with this message."""


class SandboxError(RatchetError):
    """The study asks for an isolation level this machine cannot provide."""


class ExperimentError(RatchetError):
    """An experiment failed; the loop records it with a status and a reason."""


class ExperimentTimeout(ExperimentError):
    """The experiment ran past its budget and was killed."""


class ExperimentCrashed(ExperimentError):
    """The experiment exited non-zero."""


class MetricNotFound(ExperimentError):
    """The experiment finished without printing a usable metric."""
