"""Several proposers taking turns: ``ratchet run --proposer llm --proposer sweep``.

Which member proposes next is a bandit on keeps per second of budget: each
member's keep rate is a Gamma posterior (keeps + prior over seconds spent + one
run budget), one value is drawn from each (Thompson sampling) and the highest
draw proposes.

Weights (``[[proposer]] weight``) are the prior, not a floor on each member's
share: a member's prior is ``weight / mean weight`` pseudo-keeps in one run's
budget, so with no history a weight-2 member is expected to keep twice as fast
as a weight-1 one and is asked more, and after a few real keeps the evidence
outweighs the prior. A floor would go on paying for a member the evidence says
keeps nothing (an expensive model that never helps, a sweep that has settled);
a prior says what the researcher believes and lets the run correct it. Equal
weights (the default) are the uniform prior of one keep per member.

A member that keeps often for little time is asked more, one that never keeps
is still asked now and then. The counts come from the history (rows record
which member proposed them), so a resumed run continues with what it learned,
and the draw is seeded by the context's seed, so a run is reproducible.

A member that runs dry (``ProposalsExhausted``) leaves the ensemble; the
ensemble runs dry when the last one does. ``current`` names the member that
answered the latest call: the loop records it on the experiment's row.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ProposalsExhausted
from ..models import RAN, Context, Experiment, Proposal
from .base import Proposer

__all__ = ["EnsembleProposer", "arm_stats", "prior_keeps", "thompson_pick"]


def arm_stats(
    history: Sequence[Experiment], tag: str, names: Sequence[str]
) -> list[tuple[int, float]]:
    """(keeps, seconds spent) of each named proposer in ``tag``'s history."""
    stats = {name: [0, 0.0] for name in names}
    for exp in history:
        if exp.tag == tag and exp.proposer in stats and exp.status in RAN:
            stats[exp.proposer][0] += exp.status == "keep"
            stats[exp.proposer][1] += exp.duration_s
    return [(int(stats[n][0]), float(stats[n][1])) for n in names]


def thompson_pick(
    stats: Sequence[tuple[int, float]],
    rng: random.Random,
    prior_seconds: float,
    weights: Sequence[float] | None = None,
) -> int:
    """The index whose draw of keeps per second is highest: Gamma(keeps + prior, seconds),
    the prior being each weight over the mean weight (1 each without weights)."""
    priors = prior_keeps(weights or [1.0] * len(stats))
    draws = [
        rng.gammavariate(keeps + prior, 1.0 / (seconds + prior_seconds))
        for (keeps, seconds), prior in zip(stats, priors, strict=True)
    ]
    return max(range(len(draws)), key=draws.__getitem__)


def prior_keeps(weights: Sequence[float]) -> list[float]:
    """Pseudo-keeps per member: relative weights scaled to a mean of one keep."""
    mean = sum(weights) / len(weights)
    return [w / mean for w in weights]


@dataclass
class EnsembleProposer:
    """Members chosen by Thompson sampling on keeps per second (see the module's notes)."""

    members: list[Proposer]
    prior_seconds: float = 60.0  # one run's budget: what a member is assumed to cost first
    weights: dict[str, float] = field(default_factory=dict)  # by member name; 1 when absent
    name: str = "ensemble"
    current: str = ""

    def propose(self, context: Context) -> Proposal:
        while self.members:
            names = [m.name for m in self.members]
            stats = arm_stats(context.history, context.tag, names)
            rng = random.Random(f"ensemble/{context.seed}")
            weights = [self.weights.get(name, 1.0) for name in names]
            member = self.members[thompson_pick(stats, rng, self.prior_seconds, weights)]
            self.current = member.name
            try:
                return member.propose(context)
            except ProposalsExhausted:
                self.members.remove(member)
        raise ProposalsExhausted("every proposer of the ensemble ran out of proposals")
