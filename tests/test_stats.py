"""Student's t quantile and the paired comparison, against published table values."""

from __future__ import annotations

import math

import pytest

from ratchet.decide.stats import paired, t_quantile, t_sf, welch


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.7062),  # tables of Student's t: two-sided 95 % critical values
        (0.975, 2, 4.3027),
        (0.975, 4, 2.7764),
        (0.975, 9, 2.2622),
        (0.975, 30, 2.0423),
        (0.95, 10, 1.8125),
        (0.995, 2, 9.9248),
        (0.995, 9, 3.2498),
        (0.999, 5, 5.8934),
        (0.975, 1e7, 1.9600),  # a huge df is the normal distribution
    ],
)
def test_t_quantile_matches_tables(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=2e-4)


@pytest.mark.parametrize("df", [1.0, 2.0, 3.7, 12.5])
def test_t_quantile_inverts_the_tail(df: float) -> None:
    for p in (0.6, 0.9, 0.995, 0.9999):
        assert t_sf(t_quantile(p, df), df) == pytest.approx(1 - p, rel=1e-8)


def test_t_quantile_for_two_df_matches_its_closed_form() -> None:
    # For df = 2: t_p = (2p - 1) * sqrt(2 / (4 p (1 - p)))
    for p in (0.8, 0.975, 0.999):
        closed = (2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p)))
        assert t_quantile(p, 2.0) == pytest.approx(closed, rel=1e-9)


def test_t_quantile_is_symmetric_and_refuses_nonsense() -> None:
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4), rel=1e-12)
    for p, df in ((0.0, 3), (1.0, 3), (0.9, 0)):
        with pytest.raises(ValueError):
            t_quantile(p, df)


def test_paired_cancels_what_both_members_of_a_pair_share() -> None:
    drift = [0.0, 10.0, 20.0, 30.0]  # the machine slows down between pairs
    candidate = [100.0 + d + e for d, e in zip(drift, (0.1, -0.1, 0.2, -0.2), strict=True)]
    incumbent = [101.0 + d for d in drift]
    test = paired(candidate, incumbent)
    assert test.difference == pytest.approx(-1.0) and test.df == 3.0
    assert test.standard_error == pytest.approx(0.0913, abs=1e-3)  # the pairs' own spread
    unpaired = welch(candidate, incumbent)
    assert unpaired.standard_error > 50 * test.standard_error  # the drift swamps Welch


def test_paired_floor_and_its_limits() -> None:
    test = paired([1.0, 1.0], [2.0, 2.0], least=0.5)  # no spread: the floor is assumed
    assert test.standard_error == pytest.approx(0.5 / math.sqrt(2))
    with pytest.raises(ValueError):
        paired([1.0], [2.0])
    with pytest.raises(ValueError):
        paired([1.0, 2.0], [2.0])


def test_welch_noise_floor_lifts_a_too_steady_spread() -> None:
    steady = welch([110.0], [108.4, 108.5, 108.6], least=2.0)
    assert steady.standard_error == pytest.approx(2.0 * math.sqrt(1 + 1 / 3))
    assert steady.df == 2.0
    assert welch([1.0], [1.0], least=0.1).df == math.inf  # the floor alone is taken as known
