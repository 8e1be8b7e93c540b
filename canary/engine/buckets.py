"""Latency as counts: the requests slower than a bound, read from a histogram's buckets.

A latency comparison needs no machinery of its own. "Slower than 250ms" is a bad event like a
5xx, and a Prometheus histogram already counts it: bucket `le` holds the requests at most `le`
long (cumulative), and `+Inf` all of them, so the requests over a bound are `+Inf` less the
bucket at that bound. The pair (slow, total) per side then goes to `engine/sequential.py` as
any other counts, and a shift of the canary's latency distribution past the bound shows up as a
higher rate of slow requests.

The bound must be one of the histogram's own bucket bounds: a bucket cannot be split, and
interpolating inside one (as histogram_quantile does) would invent counts the test then treats as
observed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# Bucket bounds come from label text (`le="0.25"`) and from a duration in seconds: equal to a
# part in 10^9 is the same bound.
_SAME = 1e-9


def slow_and_total(buckets: Mapping[float, float], bound: float) -> tuple[float, float]:
    """(requests slower than `bound`, all requests) from cumulative bucket counts by `le`.

    `buckets` maps each bucket's upper bound (math.inf for `+Inf`) to its cumulative count over
    one window, in the histogram's own unit, as is `bound`. ValueError, with one line saying
    what is wrong, when the buckets lack `+Inf` or the bound, or when the counts are not
    cumulative counts.
    """
    if math.inf not in buckets:
        raise ValueError("the histogram has no +Inf bucket, so its total is unknown")
    total = buckets[math.inf]
    at_bound = next(
        (count for le, count in buckets.items() if abs(le - bound) <= _SAME * max(1.0, bound)),
        None,
    )
    if at_bound is None:
        finite = sorted(le for le in buckets if math.isfinite(le))
        shown = ", ".join(f"{le:g}" for le in finite[:12])
        more = ", ..." if len(finite) > 12 else ""
        raise ValueError(f"{bound:g} is not a bucket bound of the histogram (le: {shown}{more})")
    previous = 0.0
    for le in sorted(buckets):
        count = buckets[le]
        if not math.isfinite(count) or count < 0:
            raise ValueError(f"bucket le={le:g}: {count!r} is not a count")
        # increase() extrapolates each series on its own, so neighbours may cross by a hair.
        if count < previous * (1 - 1e-6) - 1e-6:
            raise ValueError(
                f"bucket le={le:g} counts {count:g}, fewer than the bucket below it "
                f"({previous:g}): these are not cumulative counts"
            )
        previous = max(previous, count)
    return max(total - at_bound, 0.0), total
