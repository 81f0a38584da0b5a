"""Early stopping: end a candidate's run once its progress curve is clearly behind.

A run may print progress lines (``{"progress": 0.4, "val_loss": 2.31}``, see
``metrics.py``). The pruner compares each of the candidate's points with the
incumbent's curve at the same fraction of the budget (linear interpolation
between the incumbent's points) and stops the run when it has been worse by
more than the noise at ``patience`` checkpoints in a row, once the run is
past ``min_progress``. Every run that would end as a discard anyway and is
stopped at 40 % of its budget gives back 60 % of it.

Decisions, and why:

- Which value (``curve_key``): ``[prune] key`` when set; else the metric
  itself when the progress lines carry it; else a loss-like key (``loss``,
  ``bpb``, ``nll``, ``ppl``, ``error``, ``mse`` … in its name; ``val``/``eval``
  ones first, as they are the least noisy). Anything else (``step``, ``lr``,
  ``tokens``) says nothing about quality, and its direction is unknown:
  without a usable key the pruner never prunes.
- Direction: the metric's own goal for the metric; ``minimize`` for a
  loss-like key (a study maximizing accuracy still trains on a loss).
- "Worse by more than the noise": a checkpoint compares two single runs,
  each off by its seed's offset (the spread of the final metric across seeds,
  ``noise``) and by the point's own jitter (a training loss on one batch
  jumps by far more than the final metric varies; estimated from the
  incumbent's curve, see ``jitter``). The difference of two such runs has a
  standard deviation of √2 · √(noise² + jitter²); the margin is
  ``CURVE_SIGMAS`` (2) of those, and at least ``FLOOR`` (1 %) of the
  incumbent's value, so that a deterministic study (no noise at all) is not
  pruned for a rounding-level difference. ``Pruner`` passes ``noise`` only
  when the curve's key *is* the metric: it is in the metric's units.
- Patience 2: a single bad checkpoint (one unlucky batch) never prunes.
- ``nan``/``inf`` in the candidate's key: the run diverged and no later
  point can bring it back, so it is pruned at once, before ``min_progress``.
- No incumbent curve, no key, or a candidate point outside the incumbent's
  range of progress: no decision (never a guess).
- The baseline and re-measurements are never pruned: the loop passes no
  watcher for them.

``should_prune`` and ``Pruner.watch`` return a reason string (the run stops,
status ``pruned``) or ``None`` (carry on), rather than a decision object: the
reason is the only thing the loop records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from itertools import pairwise
from statistics import median

from ..metrics import ProgressPoint
from ..models import gain

__all__ = [
    "CURVE_SIGMAS",
    "FLOOR",
    "Pruner",
    "curve_goal",
    "curve_key",
    "jitter",
    "should_prune",
    "value_at",
]

CURVE_SIGMAS = 2.0  # how many sigmas of point-to-point jitter a checkpoint must lag by
FLOOR = 0.01  # the smallest margin: 1 % of the incumbent's value at that point
_LOSS_WORDS = ("loss", "bpb", "bpc", "nll", "ppl", "perplexity", "error", "err", "mse", "rmse",
               "mae")  # fmt: skip
_HELD_OUT = ("val", "valid", "validation", "eval", "test")


def _words(key: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]


def _loss_like(key: str) -> bool:
    return any(w in _LOSS_WORDS or w.endswith("loss") for w in _words(key))


def curve_key(
    points: Sequence[ProgressPoint], metric_name: str, configured: str | None
) -> str | None:
    """The progress value to compare (see the module docstring), or None when there is none."""
    keys = list(dict.fromkeys(k for p in points for k in p.values))
    if configured is not None:
        return configured if configured in keys else None
    if metric_name in keys:
        return metric_name
    losses = [k for k in keys if _loss_like(k)]
    held_out = [k for k in losses if any(w in _HELD_OUT for w in _words(k))]
    return (held_out or losses or [None])[0]


def curve_goal(key: str, metric_name: str, goal: str) -> str:
    """The direction of ``key``: the metric's goal, or ``minimize`` for a loss-like key."""
    if key != metric_name and _loss_like(key):
        return "minimize"
    return goal


def _finite_curve(points: Sequence[ProgressPoint], key: str) -> list[tuple[float, float]]:
    """(progress, value) with a finite value, sorted by progress; the last of equal progress."""
    curve: dict[float, float] = {}
    for p in points:
        value = p.values.get(key)
        if value is not None and math.isfinite(value) and math.isfinite(p.progress):
            curve[p.progress] = value
    return sorted(curve.items())


def _interpolate(curve: Sequence[tuple[float, float]], progress: float) -> float | None:
    if not curve or not curve[0][0] <= progress <= curve[-1][0]:
        return None
    for (x0, y0), (x1, y1) in pairwise(curve):
        if x0 <= progress <= x1:
            return y0 + (y1 - y0) * (progress - x0) / (x1 - x0)
    return curve[0][1]  # a single point, at exactly this progress


def value_at(points: Sequence[ProgressPoint], key: str, progress: float) -> float | None:
    """``key`` at ``progress``, linearly interpolated; None outside the curve's range.

    Points without ``key`` or with a non-finite value are skipped.
    """
    return _interpolate(_finite_curve(points, key), progress)


def jitter(points: Sequence[ProgressPoint], key: str, start: float = 0.0) -> float:
    """The point-to-point noise of a curve from ``start`` on (0.0 with fewer than 5 points).

    Second differences ``y[i-1] - 2 y[i] + y[i+1]`` cancel a smooth trend and
    leave noise with variance 6 σ²; their median absolute value (robust to a
    loss spike) is 0.6745 √6 σ for normal noise.
    """
    values = [v for x, v in _finite_curve(points, key) if x >= start]
    if len(values) < 5:
        values = [v for _, v in _finite_curve(points, key)]
    if len(values) < 5:
        return 0.0
    seconds = [abs(a - 2 * b + c) for a, b, c in zip(values, values[1:], values[2:], strict=False)]
    return median(seconds) / (0.6745 * math.sqrt(6))


class _Watch:
    """The state of one run being watched: the reference curve and the bad streak."""

    def __init__(
        self,
        incumbent: Sequence[ProgressPoint],
        *,
        key: str,
        goal: str,
        noise: float,
        min_progress: float,
        patience: int,
    ) -> None:
        self.key, self.goal, self.min_progress = key, goal, min_progress
        self.patience = max(1, patience)
        self.curve = _finite_curve(incumbent, key)
        wobble = math.hypot(noise, jitter(incumbent, key, min_progress))
        self.fixed = CURVE_SIGMAS * math.sqrt(2) * wobble
        self.streak = 0
        self.reason: str | None = None

    def margin(self, reference: float) -> float:
        return max(self.fixed, FLOOR * abs(reference))

    def feed(self, point: ProgressPoint) -> str | None:
        if self.reason is None:
            self.reason = self._check(point)
        return self.reason

    def _check(self, point: ProgressPoint) -> str | None:
        value = point.values.get(self.key)
        if value is None or not self.curve:
            return None
        at = f"at {point.progress:.0%} of the budget"
        if not math.isfinite(value):
            return f"diverged: {self.key} is {value} {at}"
        reference = _interpolate(self.curve, point.progress)
        if point.progress < self.min_progress or reference is None:
            return None
        lag = -gain(value, reference, self.goal)
        margin = self.margin(reference)
        self.streak = self.streak + 1 if lag > margin else 0
        if self.streak < self.patience:
            return None
        return (
            f"{self.key} {value:.4g} vs the incumbent's {reference:.4g} {at}: behind by more"
            f" than {margin:.2g} at {self.streak} checkpoints in a row"
        )


def should_prune(
    candidate: Sequence[ProgressPoint],
    incumbent: Sequence[ProgressPoint],
    *,
    key: str,
    goal: str,
    noise: float,
    min_progress: float,
    patience: int = 2,
) -> str | None:
    """Why the candidate's run should have stopped by its last point, or None.

    ``goal`` is the direction of ``key`` (see ``curve_goal``). Once a run is
    prunable it stays so: the answer for a curve is the answer at the first
    point where it became prunable, so calling this on a growing curve and
    calling it once at the end agree.
    """
    watch = _Watch(
        incumbent, key=key, goal=goal, noise=noise, min_progress=min_progress, patience=patience
    )
    for point in candidate:
        reason = watch.feed(point)
        if reason is not None:
            return reason
    return None


class Pruner:
    """Stateful watcher the loop passes to Executor.measure(candidate, watch=pruner.watch).

    One pruner watches one run. It picks the key from the incumbent's curve
    (``curve_key``) and that key's direction (``curve_goal``); ``noise`` (the
    spread of the incumbent's final metric) joins the margin only when the
    key is the metric itself.
    """

    def __init__(
        self,
        incumbent_curve: Sequence[ProgressPoint],
        *,
        metric_name: str,
        goal: str,
        noise: float,
        min_progress: float,
        key: str | None = None,
    ) -> None:
        self.key = curve_key(incumbent_curve, metric_name, key)
        self._watch: _Watch | None = None
        if self.key is not None:
            self._watch = _Watch(
                incumbent_curve,
                key=self.key,
                goal=curve_goal(self.key, metric_name, goal),
                noise=noise if self.key == metric_name else 0.0,
                min_progress=min_progress,
                patience=2,
            )

    def watch(self, point: ProgressPoint) -> str | None:
        """A reason stops the run (status ``pruned``); None lets it go on."""
        return None if self._watch is None else self._watch.feed(point)
