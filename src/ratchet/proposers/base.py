"""The one seam every proposer implements.

A proposer turns a ``Context`` (program, editable files, history) into one
``Proposal``. Keeping the seam to a single method means a test double is a
small class, and the loop never needs to know whether an LLM, a coding
agent, the offline mutator or a replay file produced the change.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ratchet.models import Context, Proposal

__all__ = ["Proposer"]


@runtime_checkable
class Proposer(Protocol):
    """Anything with a ``name`` and a ``propose(context) -> Proposal`` method.

    ``propose`` raises ``ProposalError`` (with a sentence naming the fix) when
    it cannot produce a change, and ``ProposalsExhausted`` when a finite
    source has run dry so the loop can end cleanly.
    """

    name: str

    def propose(self, context: Context) -> Proposal:
        """Return the next candidate change for ``context``."""
        ...
