"""Decision rules: is a candidate really better than the incumbent?

A judge is a pure function over metric samples. It may answer ``more`` to ask
the loop for another sample of the candidate (with a new seed) before it
decides; the loop keeps asking until the answer is ``keep`` or ``discard``
(and stops at ``[decision] max_samples`` whatever the answer).

- ``strict`` is the original autoresearch rule: one sample, keep iff strictly
  better than the incumbent's mean. On a noisy metric it keeps about half of
  the changes that do nothing.
- ``noise-aware`` (the default) keeps only what beats the incumbent with the
  configured confidence, and spends samples only where they can change the
  answer: a clear loss or a deterministic study is decided on one sample, an
  ambiguous candidate is sampled again. See ``NoiseAwareJudge`` for the rule
  and ``benchmarks/noise.py`` for what it buys and costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean
from typing import TYPE_CHECKING, Literal, Protocol

from ..errors import ConfigError
from ..models import better, gain
from .stats import Welch, paired, spread, t_quantile, welch
from .timing import noise_floor

if TYPE_CHECKING:
    from ..study import DecisionSpec

__all__ = [
    "Verdict",
    "Judge",
    "StrictJudge",
    "NoiseAwareJudge",
    "better",
    "make_judge",
    "noise",
]

# One sample is clearly worse when a sample of the incumbent's own code would land that far
# below its mean at most this often (a one-sided prediction bound, from the t distribution of
# the incumbent's m - 1 degrees of freedom: 9.9 of its sigmas with 3 samples, 3.5 with 10).
CLEAR_LOSS_LEVEL = 0.005
# The sequential boundaries (see NoiseAwareJudge), calibrated by benchmarks/noise.py so that,
# sampled as ratchet.decide.sampling says, a no-op is kept at most 1 - confidence of the time.
FINAL_SHARE = 0.6  # of 1 - confidence: the last look's level (the early looks add the rest)
DESIGN_GAIN = 1.0  # in sigmas: the improvement the futility bound measures candidates against
FUTILITY_Z = 1.75  # discard once this many standard errors below a DESIGN_GAIN improvement
# Pairs (interleaved sampling): their t has n - 1 degrees of freedom, so the futility bound
# needs more patience to keep 80 % of one-sigma gains, and the longer sampling it buys looks
# more often, which the last look's smaller share pays for.
PAIRED_FUTILITY_Z = 2.0
PAIRED_FINAL_SHARE = 0.5
RELATIVE_SCALE = 1e-3  # complexity unit when the incumbent has no spread: 0.1 % of its mean


@dataclass(frozen=True)
class Verdict:
    """``keep`` / ``discard`` end the experiment; ``more`` asks for another sample."""

    decision: Literal["keep", "discard", "more"]
    reason: str


def noise(samples: Sequence[float]) -> float:
    """The incumbent's spread: sample standard deviation, 0.0 for fewer than two samples."""
    return spread(samples)


class Judge(Protocol):
    """Decides from the candidate's samples so far and the incumbent's samples.

    ``lines_added`` / ``lines_removed`` describe the candidate's diff, for rules
    that weigh simplicity; a rule may ignore them. ``alongside`` is empty unless
    the study interleaves (``ratchet.decide.sampling.interleaved``); then it
    holds the incumbent's samples taken in turn with the candidate's,
    ``alongside[i]`` run back to back with ``samples[i]``, and ``incumbent``
    holds them too, after the incumbent's earlier samples.
    """

    name: str

    def decide(
        self,
        samples: Sequence[float],
        incumbent: Sequence[float],
        goal: str,
        *,
        lines_added: int = 0,
        lines_removed: int = 0,
        alongside: Sequence[float] = (),
    ) -> Verdict: ...


class StrictJudge:
    """Keep iff the candidate's mean is strictly better than the incumbent's mean."""

    name = "strict"

    def decide(
        self,
        samples: Sequence[float],
        incumbent: Sequence[float],
        goal: str,
        *,
        lines_added: int = 0,
        lines_removed: int = 0,
        alongside: Sequence[float] = (),
    ) -> Verdict:
        if not samples:
            return Verdict("more", "no sample yet")
        ours, theirs = fmean(samples), fmean(incumbent)
        if better(ours, theirs, goal):
            return Verdict("keep", f"{ours:.6g} beats the incumbent's {theirs:.6g}")
        return Verdict("discard", f"{ours:.6g} does not beat the incumbent's {theirs:.6g}")


# --- the noise-aware rule ---------------------------------------------------------------


@dataclass(frozen=True)
class _Comparison:
    """Candidate against incumbent, oriented so that a positive ``gain`` is better.

    ``incumbent`` is what the candidate is compared with: the incumbent's
    samples, or when ``paired`` only those taken alongside the candidate's.
    """

    samples: tuple[float, ...]
    incumbent: tuple[float, ...]
    test: Welch  # on the oriented values: difference == gain
    spread: float  # the candidate's
    sigma: float  # the incumbent's spread (over all its samples), at least the noise floor
    flat: bool  # neither side varied at all, and no noise floor
    paired: bool = False
    m_all: int = 0  # the incumbent's samples, all of them (``m`` when not paired)

    @property
    def gain(self) -> float:
        return self.test.difference

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def m(self) -> int:
        return len(self.incumbent)

    @property
    def deterministic(self) -> bool:
        """No spread on either side, and at least one side repeated its value exactly."""
        return self.flat and max(self.m_all, self.n) >= 2

    @property
    def design_se(self) -> float:
        """The standard error of the gain in incumbent sigmas, were the noise exactly sigma."""
        if self.paired:
            return math.sqrt(2.0 / self.n)
        return math.sqrt(1.0 / self.n + 1.0 / self.m)

    def text(self, verb: str = "vs") -> str:
        """``0.412 ± 0.004 (n=3) vs 0.430 ± 0.006 (n=3)`` at a precision the spread supports."""
        ours, theirs = self.spread, spread(self.incumbent)
        known = [d for d in (_decimals(ours), _decimals(theirs)) if d is not None]
        digits = max(known) if known else None
        ours_text = _show(self.samples, ours, digits)
        theirs_text = _show(self.incumbent, theirs, digits)
        return f"{ours_text} {verb} {theirs_text}{', paired' if self.paired else ''}"


def _decimals(sigma: float) -> int | None:
    """Decimals that show a spread to one significant digit (two when it starts with 1)."""
    if sigma <= 0 or not math.isfinite(sigma):
        return None
    exponent = math.floor(math.log10(sigma))
    lead = sigma / 10**exponent
    return max(0, -exponent + (1 if lead < 2 else 0))


def _show(values: Sequence[float], sigma: float, digits: int | None) -> str:
    mean = fmean(values)
    if digits is None:
        body = f"{mean:.6g}"
    elif sigma > 0:
        body = f"{mean:.{digits}f} ± {sigma:.{digits}f}"
    else:
        body = f"{mean:.{digits}f}"
    return f"{body} (n={len(values)})"


def _p(p: float) -> str:
    return "p<0.0001" if p < 1e-4 else f"p={p:.2g}"


class NoiseAwareJudge:
    """Keep only what beats the incumbent with ``confidence``; sample again while unsure.

    The test is Welch's one-sided t-test of "the candidate's mean is better by
    more than ``min_delta``". Welch, not Student: a candidate is different
    code, its spread need not equal the incumbent's (a new optimizer can be
    noisier), and with 1-5 samples a side a pooled-variance test is badly
    miscalibrated when the spreads differ. The Welch–Satterthwaite degrees of
    freedom keep the small-sample penalty honest. With one candidate sample
    there is no candidate spread: the incumbent's variance stands in for it
    (same measurement, different code) and the degrees of freedom are the
    incumbent's, m - 1. The Student-t tail is computed in pure Python
    (``ratchet.decide.stats``).

    Each new sample is a new look at the data, and testing at the full level
    at every look would keep far more than ``1 - confidence`` of the changes
    that do nothing. The keep boundary is O'Brien–Fleming shaped: the last
    look (n = max_samples) tests at ``FINAL_SHARE`` of the error budget, a
    look at n samples needs a z-score ``sqrt(max_samples / n)`` times the last
    one's, so a large gain is kept early and the early looks spend almost
    nothing. A futility bound ends the hopeless cases early (most proposals
    do nothing, and they must be cheap): from the second sample on, a
    candidate whose t statistic (read as the normal z of the same tail, so
    few degrees of freedom count honestly) is more than ``FUTILITY_Z`` below
    what a ``DESIGN_GAIN`` (one sigma) improvement would show with these
    sample counts is discarded. Pairs use ``PAIRED_FUTILITY_Z`` and
    ``PAIRED_FINAL_SHARE`` instead. The constants are calibrated by
    simulation (``benchmarks/noise.py``) for the loop's protocol, in which the incumbent
    is re-measured alongside an ambiguous candidate: at 3 samples no test can
    keep 80 % of the one-sigma gains, whatever the candidate's count.

    The steps, in order:

    1. Deterministic study (no spread on either side, and one side repeated
       its value exactly): the sample is the truth; keep iff better by more
       than ``min_delta``. Against a single incumbent sample (a commit kept
       on one sample) a better candidate is measured twice: its repeat shows
       whether the new code is still deterministic.
    2. One sample (or one pair), clearly worse: beyond the one-sided
       ``1 - CLEAR_LOSS_LEVEL`` prediction bound of Student's t with the
       incumbent's ``m - 1`` degrees of freedom (a fixed "2 sigma" from 3
       samples cut a candidate for a loss its own code shows one run in
       twenty), or worse at all when the incumbent has a single sample and
       no noise floor: discard.
    3. Significant at this look's level: keep, after at least two samples so
       the candidate's own spread is seen (unless ``max_samples`` is 1).
    4. From the second sample on, past the futility bound: discard.
    5. ``max_samples`` reached without significance: discard. Else ``more``.

    Simplicity, only when ``complexity_weight > 0``: a candidate that removes
    code (``lines_removed > lines_added``) and would be discarded in steps 1,
    4 or 5 is kept "simpler at equal metric" when it is not significantly
    worse (at ``confidence``). A keep that adds code must gain at least
    ``complexity_weight * (lines_added - lines_removed) * unit``, where the
    unit is the incumbent's spread (its noise: weight 0.01 asks a 100-line
    addition for a one-sigma gain), or ``RELATIVE_SCALE * |mean|`` when the
    incumbent has no spread (a deterministic study).

    Noise floor (``noise_floor``, a fraction of the incumbent's mean; 2 % by
    default for a timing metric, ``ratchet.decide.timing``): no side's spread
    is taken below it, so three lucky-steady runs of a benchmark do not make
    a single slow run "clearly worse", and the study is never read as
    deterministic.

    Paired (``alongside``, when the study interleaves): the gain is the mean
    of the pairwise differences and the test Student's t on them (n - 1
    degrees of freedom); drift of the machine between pairs drops out. With
    one pair the difference's spread is lent by the incumbent's samples
    (``sqrt(2)`` sigma, their m - 1 degrees of freedom). The steps are the
    same.
    """

    name = "noise-aware"

    def __init__(
        self,
        confidence: float = 0.95,
        min_delta: float = 0.0,
        max_samples: int = 20,
        complexity_weight: float = 0.0,
        noise_floor: float = 0.0,
    ) -> None:
        if not 0.5 < confidence < 1:
            raise ValueError(f"confidence must be between 0.5 and 1, got {confidence}")
        if min_delta < 0 or max_samples < 1 or complexity_weight < 0 or not 0 <= noise_floor < 1:
            raise ValueError(
                "min_delta and complexity_weight must be >= 0, max_samples >= 1,"
                " noise_floor in [0, 1)"
            )
        self.confidence = confidence
        self.min_delta = min_delta
        self.max_samples = max_samples
        self.complexity_weight = complexity_weight
        self.noise_floor = noise_floor

    def decide(
        self,
        samples: Sequence[float],
        incumbent: Sequence[float],
        goal: str,
        *,
        lines_added: int = 0,
        lines_removed: int = 0,
        alongside: Sequence[float] = (),
    ) -> Verdict:
        if not samples:
            return Verdict("more", "no sample yet")
        if not incumbent:
            raise ValueError("the incumbent has no samples to compare with")
        if alongside and len(alongside) != len(samples):
            raise ValueError(f"{len(alongside)} incumbent samples alongside {len(samples)}")
        c = _compare(samples, incumbent, goal, self.noise_floor, alongside)
        net = lines_added - lines_removed
        if c.deterministic:
            return self._exact(c, net)
        return self._noisy(c, net)

    # --- steps ------------------------------------------------------------------------

    @property
    def _alpha(self) -> float:
        return 1.0 - self.confidence

    def _level(self, n: int, paired: bool = False) -> float:
        """The significance level of the look at ``n`` samples (see the class docstring)."""
        share = PAIRED_FINAL_SHARE if paired else FINAL_SHARE
        final = NormalDist().inv_cdf(1.0 - self._alpha * share)
        if n >= self.max_samples:
            return 1.0 - NormalDist().cdf(final)
        return 1.0 - NormalDist().cdf(final * math.sqrt(self.max_samples / n))

    def _futile(self, c: _Comparison) -> bool:
        """Too far below what a ``DESIGN_GAIN`` improvement would show by now to catch up."""
        p = c.test.p_greater(self.min_delta)  # the t statistic, read on the normal scale
        z = NormalDist().inv_cdf(min(max(1.0 - p, 1e-12), 1.0 - 1e-12))
        patience = PAIRED_FUTILITY_Z if c.paired else FUTILITY_Z
        return z < DESIGN_GAIN / c.design_se - patience

    def _exact(self, c: _Comparison, net: int) -> Verdict:
        """No noise on either side: the one sample decides."""
        where = f"{c.text()}, no spread"
        if c.gain > self.min_delta:
            return self._keep(c, net, f"{c.text('beats')}, no spread")
        if self._simpler(net) and c.gain >= -self.min_delta:
            return Verdict("keep", f"simpler at equal metric: {where}, {-net} lines fewer")
        if c.gain > 0:
            return Verdict("discard", f"{where}: better by only {c.gain:.6g} ≤ min_delta")
        return Verdict("discard", f"{where}: not better")

    def _noisy(self, c: _Comparison, net: int) -> Verdict:
        final = c.n >= self.max_samples
        if c.n == 1 and self._clear_loss(c):
            if c.test.standard_error > 0:
                bound = t_quantile(1.0 - CLEAR_LOSS_LEVEL, c.test.df)
                why = (
                    f"clearly worse ({-c.gain / c.test.standard_error:.3g} standard errors"
                    f" behind, beyond the {1 - CLEAR_LOSS_LEVEL:.1%} bound {bound:.3g}"
                    f" of t with {c.test.df:g} df)"
                )
            else:
                why = "worse, and one incumbent sample has no spread to excuse it"
            return Verdict("discard", f"{c.text()}: {why}")
        if c.test.standard_error == 0.0:  # one sample on each side: no spread known yet
            if final:
                return self._exact(c, net)
            return Verdict("more", f"{c.text()}: no spread known yet")
        p = c.test.p_greater(self.min_delta)
        if (c.n >= 2 or final) and p <= self._level(c.n, c.paired):
            return self._keep(c, net, f"{c.text('beats')}, {_p(p)}")
        hopeless = c.n >= 2 and self._futile(c)
        if self._simpler(net) and (final or hopeless):
            return self._equal(c, net)
        if hopeless:
            return Verdict("discard", f"{c.text()}: likely no better, {_p(p)}")
        if final:
            level = f"{self.confidence:.0%}"
            return Verdict(
                "discard", f"{c.text()}: {_p(p)} after {c.n} samples, not significant at {level}"
            )
        return Verdict("more", f"{c.text()}: {_p(p)}, not yet significant")

    def _clear_loss(self, c: _Comparison) -> bool:
        if c.test.standard_error > 0:
            return c.test.p_less(0.0) < CLEAR_LOSS_LEVEL
        return c.gain <= 0  # a single incumbent sample: no spread to excuse a loss

    def _keep(self, c: _Comparison, net: int, evidence: str) -> Verdict:
        """A significant gain, unless it is too small for the code it adds."""
        needed = self._price(c, net)
        if needed > 0 and c.gain < needed:
            return Verdict(
                "discard",
                f"{evidence}, but a gain of {c.gain:.3g} does not pay for {net} added lines"
                f" (needs {needed:.3g} at complexity_weight {self.complexity_weight:g})",
            )
        return Verdict("keep", evidence)

    def _price(self, c: _Comparison, net: int) -> float:
        """The gain that ``net`` added lines must buy (0 when free)."""
        if self.complexity_weight <= 0 or net <= 0:
            return 0.0
        unit = c.sigma if c.sigma > 0 else RELATIVE_SCALE * abs(fmean(c.incumbent))
        return self.complexity_weight * net * unit

    def _simpler(self, net: int) -> bool:
        return self.complexity_weight > 0 and net < 0

    def _equal(self, c: _Comparison, net: int) -> Verdict:
        """Keep code removal unless the candidate is significantly worse."""
        p_worse = c.test.p_less(-self.min_delta)
        if p_worse <= self._alpha:
            return Verdict("discard", f"{c.text()}: simpler, but worse ({_p(p_worse)})")
        return Verdict("keep", f"simpler at equal metric: {c.text()}, {-net} lines fewer")


def _compare(
    samples: Sequence[float],
    incumbent: Sequence[float],
    goal: str,
    floor: float = 0.0,
    alongside: Sequence[float] = (),
) -> _Comparison:
    """The test on values oriented so that bigger is better: Welch's, or paired."""
    ours = [gain(x, 0.0, goal) for x in samples]
    theirs = [gain(x, 0.0, goal) for x in incumbent]
    least = floor * abs(fmean(incumbent))
    sigma = max(spread(incumbent), least)
    flat = least == 0.0 and spread(samples) == 0.0 and spread(incumbent) == 0.0
    if not alongside:
        test = welch(ours, theirs, least)
        return _Comparison(
            tuple(samples), tuple(incumbent), test, spread(samples), sigma, flat,
            m_all=len(incumbent),
        )  # fmt: skip
    beside = [gain(x, 0.0, goal) for x in alongside]
    if len(ours) >= 2:
        test = paired(ours, beside, least * math.sqrt(2.0))
    else:  # one pair: the difference's spread is lent by the incumbent's samples
        df = float(len(incumbent) - 1) or math.inf  # a floor alone is taken as known
        test = Welch(ours[0] - beside[0], sigma * math.sqrt(2.0), df)
    return _Comparison(
        tuple(samples), tuple(alongside), test, spread(samples), sigma, flat,
        paired=True, m_all=len(incumbent),
    )  # fmt: skip


def make_judge(spec: DecisionSpec, metric: str = "") -> Judge:
    """The judge for a study's ``[decision]`` section, on the metric named ``metric``.

    The metric's name matters only for the noise floor (``ratchet.decide.timing``):
    pass ``study.metric.name`` so a timing metric gets its 2 % floor.
    """
    if spec.rule == "strict":
        return StrictJudge()
    if spec.rule == "noise-aware":
        return NoiseAwareJudge(
            confidence=spec.confidence,
            min_delta=spec.min_delta,
            max_samples=spec.max_samples,
            complexity_weight=spec.complexity_weight,
            noise_floor=noise_floor(spec, metric),
        )
    raise ConfigError(
        f'unknown decision rule {spec.rule!r} — use [decision] rule = "noise-aware" or "strict"'
    )
