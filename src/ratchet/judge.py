"""Decision rules: is a candidate really better than the incumbent?

A judge is a pure function over metric samples. It may answer ``more`` to ask
the loop for another sample of the candidate (with a new seed) before it
decides; the loop keeps asking until the answer is ``keep`` or ``discard``.
``strict`` is the original autoresearch rule: one sample, keep iff strictly
better. A noise-aware rule plugs in behind the same ``Judge`` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Literal, Protocol

from .errors import ConfigError

__all__ = ["Verdict", "Judge", "StrictJudge", "better", "make_judge"]


@dataclass(frozen=True)
class Verdict:
    """``keep`` / ``discard`` end the experiment; ``more`` asks for another sample."""

    decision: Literal["keep", "discard", "more"]
    reason: str


def better(candidate: float, incumbent: float, goal: str) -> bool:
    """True when ``candidate`` is strictly better than ``incumbent`` under ``goal``."""
    return candidate < incumbent if goal == "minimize" else candidate > incumbent


class Judge(Protocol):
    """Decides from the candidate's samples so far and the incumbent's samples."""

    name: str

    def decide(
        self, samples: Sequence[float], incumbent: Sequence[float], goal: str
    ) -> Verdict: ...


class StrictJudge:
    """Keep iff the candidate's mean is strictly better than the incumbent's mean."""

    name = "strict"

    def decide(self, samples: Sequence[float], incumbent: Sequence[float], goal: str) -> Verdict:
        if not samples:
            return Verdict("more", "no sample yet")
        ours, theirs = fmean(samples), fmean(incumbent)
        if better(ours, theirs, goal):
            return Verdict("keep", f"{ours:.6g} beats the incumbent's {theirs:.6g}")
        return Verdict("discard", f"{ours:.6g} does not beat the incumbent's {theirs:.6g}")


def make_judge(rule: str) -> Judge:
    """The judge for ``[decision] rule``."""
    if rule == "strict":
        return StrictJudge()
    raise ConfigError(f'unknown decision rule {rule!r} — use [decision] rule = "strict"')
