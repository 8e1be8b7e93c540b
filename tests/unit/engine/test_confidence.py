"""Confidence sequences for a rate: the interval's ends, and its coverage at every look at once."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.engine import confidence
from tests import traffic


@pytest.mark.parametrize(
    ("bad", "requests"),
    [(41, 1000), (10, 1000), (1, 20), (100, 10_000), (999, 1000), (12.5, 300.7)],
)
def test_the_interval_holds_the_estimate_and_its_ends_are_the_boundary(
    bad: float, requests: float
) -> None:
    alpha = 0.01
    low, high = confidence.interval(bad, requests, alpha=alpha)
    assert 0 < low < bad / requests < high < 1
    good = requests - bad
    log_mixture = (
        math.lgamma(0.5 + bad)
        + math.lgamma(0.5 + good)
        - math.lgamma(1 + requests)
        - 2 * math.lgamma(0.5)
        + math.lgamma(1.0)
    )

    def log_martingale(q: float) -> float:
        return log_mixture - bad * math.log(q) - good * math.log1p(-q)

    # At each end the mixture martingale stands exactly at 1/alpha.
    assert log_martingale(low) == pytest.approx(math.log(1 / alpha), abs=1e-6)
    assert log_martingale(high) == pytest.approx(math.log(1 / alpha), abs=1e-6)


def test_no_bad_events_or_no_good_ones_leave_that_end_open() -> None:
    assert confidence.interval(0, 1000, alpha=0.01)[0] == 0.0
    assert confidence.interval(1000, 1000, alpha=0.01)[1] == 1.0
    assert confidence.interval(0, 0, alpha=0.01) == (0.0, 1.0)


def test_the_interval_narrows_with_the_requests() -> None:
    widths = [
        confidence.interval(n / 100, n, alpha=0.01)[1]
        - confidence.interval(n / 100, n, alpha=0.01)[0]
        for n in (1000, 10_000, 100_000)
    ]
    assert widths[0] > widths[1] > widths[2]


def test_the_true_rate_stays_inside_every_interval_at_once() -> None:
    """Looked at every 100 requests up to 5,000, the sequence misses the true rate (anywhere
    along the way) in fewer than alpha of the runs; Wilson's fixed-sample 95% interval, looked
    at as often on the same draws, misses it in about a third."""
    rng = random.Random(16)
    alpha, rate, runs = 0.05, 0.02, 2000
    misses = wilson_misses = 0
    for _ in range(runs):
        bad = 0
        missed = wilson_missed = False
        for looks in range(1, 51):
            bad += traffic.binomial(rng, 100, rate)
            low, high = confidence.interval(bad, 100 * looks, alpha=alpha)
            missed = missed or not low <= rate <= high
            wilson_missed = wilson_missed or not _wilson(bad, 100 * looks, rate)
        misses += missed
        wilson_misses += wilson_missed
    assert misses / runs < alpha
    assert wilson_misses / runs > 4 * alpha


def _wilson(bad: int, requests: int, rate: float) -> bool:
    """Whether Wilson's 95% interval for bad/requests holds `rate`."""
    z, p = 1.96, bad / requests
    centre = (p + z * z / (2 * requests)) / (1 + z * z / requests)
    half = (
        z * math.sqrt(p * (1 - p) / requests + z * z / (4 * requests**2)) / (1 + z * z / requests)
    )
    return centre - half <= rate <= centre + half


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0, 1e15).flatmap(lambda n: st.tuples(st.floats(0, n), st.just(n))),
    st.floats(1e-6, 0.2),
)
def test_any_counts_give_an_interval_around_the_estimate(
    counts: tuple[float, float], alpha: float
) -> None:
    bad, requests = counts
    low, high = confidence.interval(bad, requests, alpha=alpha)
    assert 0.0 <= low <= high <= 1.0
    if requests > 0:
        assert low <= bad / requests * (1 + 1e-9)
        assert bad / requests <= high * (1 + 1e-9)
