"""Timing metrics: which they are, and what noise the judge may assume for them. Pure.

A wall-clock measurement is noisier than its spread over three samples shows:
another process, a warmer or throttled chip, a page cache emptied by someone
else's job. Measured on one shared machine, the same code gave 108.4, 108.2
and 128.9 ms after its baseline had shown ±1.9 ms. Two defences follow for a
metric whose name says it is a time (``is_timing``):

- a relative noise floor: the judge never assumes a spread below
  ``TIMING_NOISE_FLOOR`` (2 %) of the value, however steady a few samples
  looked. ``[decision] noise_floor`` sets it for any metric (0 turns it off).
- interleaving: candidate and incumbent are sampled in turns and compared
  pair by pair, so a machine that drifts slower or faster moves both sides
  alike (``ratchet.decide.sampling.interleaved``; ``[decision] interleave``).

The name test is by words (``runtime_ms``, ``step_time``, ``latency``,
``wall_seconds``, ``tokens_per_s``: a rate measured on the clock is as noisy).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..study import DecisionSpec

__all__ = ["TIMING_NOISE_FLOOR", "is_timing", "noise_floor"]

TIMING_NOISE_FLOOR = 0.02  # the least relative spread assumed for a timing metric
TIME_WORDS = frozenset(
    {
        "time", "times", "runtime", "walltime", "latency", "duration", "elapsed", "wall",
        "seconds", "second", "secs", "sec", "s", "ms", "us", "ns", "msec", "usec",
        "millis", "micros", "nanos", "milliseconds", "microseconds", "nanoseconds",
    }
)  # fmt: skip
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def is_timing(metric: str) -> bool:
    """Whether a metric's name says it is measured on the clock (``runtime_ms``, ``latency``)."""
    words = [w.lower() for w in _WORD.findall(metric)]
    return any(w in TIME_WORDS or w.endswith("time") for w in words)


def noise_floor(decision: DecisionSpec, metric: str) -> float:
    """The least relative spread the judge assumes: the setting, else 2 % for a timing metric."""
    if decision.noise_floor is not None:
        return decision.noise_floor
    return TIMING_NOISE_FLOOR if is_timing(metric) else 0.0
