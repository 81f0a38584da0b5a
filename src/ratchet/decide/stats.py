"""The little statistics the judge needs, in pure Python (no scipy).

Ratchet's decision rules need one thing a standard library lacks: the tail of
Student's t distribution, and its quantile, for a non-integer number of degrees
of freedom (Welch's test gives fractional ones). The tail is the regularized incomplete
beta function, evaluated with its continued fraction (modified Lentz), which
converges fast for every argument once the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)``
puts ``x`` on the side where the fraction behaves. The quantile inverts the tail by
bisection: slow next to a closed form, but exact to 1e-10 for any ``df`` and
cached, and the judge asks for a handful of distinct ones per study.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import fmean

__all__ = ["Welch", "spread", "regularized_beta", "t_sf", "t_quantile", "paired", "welch"]

_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 500


def spread(samples: Sequence[float]) -> float:
    """The sample standard deviation (n - 1); 0.0 for fewer than two samples.

    Exactly 0.0 when all samples are equal (a deterministic study must read as
    one, whatever the rounding of the mean), and plain float arithmetic
    otherwise: ``statistics.stdev`` is exact but a hundred times slower, which
    the benchmarks' many thousand decisions notice.
    """
    n = len(samples)
    if n < 2 or min(samples) == max(samples):
        return 0.0
    mean = math.fsum(samples) / n
    return math.sqrt(math.fsum((x - mean) ** 2 for x in samples) / (n - 1))


def regularized_beta(x: float, a: float, b: float) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function, for ``a, b > 0``."""
    if not 0.0 <= x <= 1.0 or a <= 0 or b <= 0:
        raise ValueError(f"regularized_beta needs 0 <= x <= 1 and a, b > 0 (x={x}, a={a}, b={b})")
    if x in (0.0, 1.0):
        return x
    if x > (a + 1) / (a + b + 2):  # the fraction converges slowly here: use the mirror
        return 1.0 - regularized_beta(1.0 - x, b, a)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    return math.exp(log_front) * _beta_fraction(x, a, b) / a


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction ``1 / (1 + d1 / (1 + d2 / (1 + ...)))`` of ``I_x(a, b)``.

    Its coefficients are ``d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))`` and
    ``d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))``; Lentz's method
    evaluates it front to back, guarding each denominator against zero.
    """
    c, d = 1.0, 1.0 / _nonzero(1.0 - (a + b) * x / (a + 1))
    value = d
    for m in range(1, _MAX_TERMS):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for coefficient in (even, odd):
            d = 1.0 / _nonzero(1.0 + coefficient * d)
            c = _nonzero(1.0 + coefficient / c)
            value *= c * d
        if abs(c * d - 1.0) < _EPS:
            break
    return value


def _nonzero(value: float) -> float:
    return value if abs(value) > _TINY else _TINY


def t_sf(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df`` (possibly fractional) degrees of freedom."""
    if df <= 0:
        raise ValueError(f"t_sf needs df > 0, got {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2, 0.5)
    return tail if t > 0 else 1.0 - tail


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """The ``t`` with ``P(T <= t) = p`` for Student's t with ``df`` degrees of freedom.

    Why not the normal quantile: with 3 samples (df = 2) the 97.5 % point is
    4.30, not 1.96; a rule written in sigmas of a 3-sample spread is more than
    twice as trigger-happy as it looks.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile needs 0 < p < 1, got {p}")
    if df <= 0:
        raise ValueError(f"t_quantile needs df > 0, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    tail = 1.0 - p
    low, high = 0.0, 1.0
    while t_sf(high, df) > tail:  # bracket: the tail shrinks as t grows
        low, high = high, high * 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_sf(mid, df) > tail:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


@dataclass(frozen=True)
class Welch:
    """Welch's comparison of two sample means: ``a`` minus ``b``."""

    difference: float  # mean(a) - mean(b)
    standard_error: float  # of the difference; 0.0 when neither side varies
    df: float  # Welch–Satterthwaite degrees of freedom (inf when unknown-free)

    def p_greater(self, margin: float = 0.0) -> float:
        """One-sided p-value of ``difference <= margin`` against ``difference > margin``."""
        if self.standard_error == 0.0:
            return 0.0 if self.difference > margin else 1.0
        return t_sf((self.difference - margin) / self.standard_error, self.df)

    def p_less(self, margin: float = 0.0) -> float:
        """One-sided p-value of ``difference >= margin`` against ``difference < margin``."""
        if self.standard_error == 0.0:
            return 0.0 if self.difference < margin else 1.0
        return t_sf((margin - self.difference) / self.standard_error, self.df)


def welch(a: Sequence[float], b: Sequence[float], least: float = 0.0) -> Welch:
    """Welch's t statistic parts for ``mean(a) - mean(b)``.

    A side with fewer than two samples has no variance of its own: it borrows
    the other side's (the two runs differ in code, not in how noisy the
    measurement is), and the degrees of freedom are then those of the one
    variance actually estimated. With one sample on each side there is no
    variance at all: the standard error is 0 and the caller must decide how to
    read that. ``least`` is the smallest standard deviation assumed for a side
    (a noise floor); a floor alone, with no variance estimated, is taken as
    known (infinite degrees of freedom).
    """
    var_a, var_b = max(spread(a), least) ** 2, max(spread(b), least) ** 2
    n, m = len(a), len(b)
    if n < 2:
        var_a = max(var_b, least**2)
    if m < 2:
        var_b = max(var_a, least**2)
    part_a, part_b = var_a / n, var_b / m
    se = math.sqrt(part_a + part_b)
    difference = fmean(a) - fmean(b)
    if se == 0.0:
        return Welch(difference, 0.0, math.inf)
    if n < 2 or m < 2:
        df = float(max(n, m) - 1) or math.inf
    else:
        df = (part_a + part_b) ** 2 / (part_a**2 / (n - 1) + part_b**2 / (m - 1))
    return Welch(difference, se, df)


def paired(a: Sequence[float], b: Sequence[float], least: float = 0.0) -> Welch:
    """The paired comparison of ``a[i]`` with ``b[i]``, each pair measured together.

    What drifts between pairs (a machine getting slower) moves both members
    alike and drops out of the differences; the test is Student's one-sample t
    on them, with ``n - 1`` degrees of freedom. ``least`` is the smallest
    standard deviation assumed for a difference. Needs two pairs or more: one
    difference has no spread of its own (the caller lends one).
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired needs two or more pairs, got {len(a)} and {len(b)} samples")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    sd = max(spread(differences), least)
    n = len(differences)
    return Welch(fmean(differences), sd / math.sqrt(n), float(n - 1))
