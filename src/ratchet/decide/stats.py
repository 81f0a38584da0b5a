"""The little statistics the judge needs, in pure Python (no scipy).

Ratchet's decision rules need one thing a standard library lacks: the tail of
Student's t distribution for a non-integer number of degrees of freedom
(Welch's test gives fractional ones). The tail is the regularized incomplete
beta function, evaluated with its continued fraction (modified Lentz), which
converges fast for every argument once the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)``
puts ``x`` on the side where the fraction behaves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

__all__ = ["Welch", "spread", "regularized_beta", "t_sf", "welch"]

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


def welch(a: Sequence[float], b: Sequence[float]) -> Welch:
    """Welch's t statistic parts for ``mean(a) - mean(b)``.

    A side with fewer than two samples has no variance of its own: it borrows
    the other side's (the two runs differ in code, not in how noisy the
    measurement is), and the degrees of freedom are then those of the one
    variance actually estimated. With one sample on each side there is no
    variance at all: the standard error is 0 and the caller must decide how to
    read that.
    """
    var_a, var_b = spread(a) ** 2, spread(b) ** 2
    n, m = len(a), len(b)
    if n < 2:
        var_a = var_b
    if m < 2:
        var_b = var_a
    part_a, part_b = var_a / n, var_b / m
    se = math.sqrt(part_a + part_b)
    difference = fmean(a) - fmean(b)
    if se == 0.0:
        return Welch(difference, 0.0, math.inf)
    if n < 2 or m < 2:
        df = float(max(n, m) - 1)
    else:
        df = (part_a + part_b) ** 2 / (part_a**2 / (n - 1) + part_b**2 / (m - 1))
    return Welch(difference, se, df)
