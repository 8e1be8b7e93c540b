"""Latency as counts: requests over a bound from a histogram's cumulative buckets."""

from __future__ import annotations

import math
import re

import pytest

from canary.engine import buckets

HISTOGRAM = {0.05: 700.0, 0.1: 900.0, 0.25: 980.0, 1.0: 999.0, math.inf: 1000.0}


@pytest.mark.parametrize(("bound", "slow"), [(0.05, 300.0), (0.1, 100.0), (0.25, 20.0), (1.0, 1.0)])
def test_the_requests_over_a_bucket_bound(bound: float, slow: float) -> None:
    assert buckets.slow_and_total(HISTOGRAM, bound) == (slow, 1000.0)


def test_a_bound_read_from_label_text_matches_its_bucket() -> None:
    assert buckets.slow_and_total({0.3: 5.0, math.inf: 6.0}, 0.1 + 0.2) == (1.0, 6.0)


def test_extrapolated_neighbours_that_cross_by_a_hair_are_counts_still() -> None:
    counts = {0.1: 100.0000001, 0.25: 100.0, math.inf: 120.0}
    assert buckets.slow_and_total(counts, 0.25) == (20.0, 120.0)


@pytest.mark.parametrize(
    ("histogram", "bound", "words"),
    [
        ({0.1: 1.0}, 0.1, "no +Inf bucket"),
        (HISTOGRAM, 0.2, "0.2 is not a bucket bound of the histogram (le: 0.05, 0.1, 0.25, 1)"),
        ({0.1: 5.0, 0.25: 3.0, math.inf: 6.0}, 0.1, "bucket le=0.25 counts 3, fewer than"),
        ({0.1: math.nan, math.inf: 6.0}, 0.1, "bucket le=0.1: nan is not a count"),
        ({0.1: -1.0, math.inf: 6.0}, 0.1, "bucket le=0.1: -1.0 is not a count"),
    ],
)
def test_buckets_that_cannot_be_read_say_why(
    histogram: dict[float, float], bound: float, words: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        buckets.slow_and_total(histogram, bound)
