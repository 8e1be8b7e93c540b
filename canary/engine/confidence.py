"""Confidence sequences for a rate of bad events: an interval that holds at every look at once.

A fixed-sample interval (Wilson, Clopper-Pearson) looked at every few seconds misses the true
rate far more often than it says. A confidence sequence does not: with probability at least
1 - alpha, the true rate lies inside every interval of the whole sequence at the same time.

The one here is Robbins' beta-binomial mixture (Robbins, "Statistical methods related to the law
of the iterated logarithm", 1970; Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Ann. Statist. 2021). Each request is a Bernoulli trial with
rate q. For a candidate q, the likelihood of the counts under a Beta(a, b) mixture of rates over
their likelihood under q,

    M(q) = B(a + bad, b + good) / B(a, b) / (q^bad * (1 - q)^good),

is a martingale with mean one when q is the true rate, so by Ville's inequality it ever reaches
1/alpha with probability at most alpha. The interval is every q where M(q) < 1/alpha. log M is
convex in q with its minimum (at most 0) at bad/requests, so the set is an interval, and each
end is found by Newton's method on log q (for the upper end, on log(1 - q)), where the function
is convex too: started outside, the iterates climb to the root without overshooting, in a handful
of steps of plain `math` (no scipy: this runs on every judged tick).

The prior Beta(1/2, 1/2) (Jeffreys') spreads its mass to both ends, so a 0.1% rate and a 50%
one are both covered without tuning.
"""

from __future__ import annotations

import math

_PRIOR_A = 0.5
_PRIOR_B = 0.5
_LOG_BETA_PRIOR = math.lgamma(_PRIOR_A) + math.lgamma(_PRIOR_B) - math.lgamma(_PRIOR_A + _PRIOR_B)
# Newton's steps are bounded in number; the ends are wanted to a part in 10^7 of log q (a
# record shows three digits; the last, quadratic step lands far closer than that anyway).
_MAX_STEPS = 60
_TOLERANCE = 1e-7
# Fewer events than this are none (fractional counts come from extrapolated increases).
_NONE = 1e-9


def interval(bad: float, requests: float, *, alpha: float) -> tuple[float, float]:
    """The confidence sequence's interval for the rate, after `bad` of `requests` (fractions).

    Counts may be fractional (Prometheus' increase() extrapolates); they must satisfy
    0 <= bad <= requests. With no requests the interval is [0, 1].
    """
    if requests <= 0:
        return 0.0, 1.0
    good = requests - bad
    log_mixture = (
        math.lgamma(_PRIOR_A + bad)
        + math.lgamma(_PRIOR_B + good)
        - math.lgamma(_PRIOR_A + _PRIOR_B + requests)
        - _LOG_BETA_PRIOR
    )
    # The interval is where -bad log q - good log(1 - q) < log(1/alpha) - log_mixture.
    level = math.log(1.0 / alpha) - log_mixture
    # A side with (next to) no events leaves its end open: Newton's start would overflow.
    low = math.exp(_outer_root(bad, good, level)) if bad > _NONE else 0.0
    high = -math.expm1(_outer_root(good, bad, level)) if good > _NONE else 1.0
    return low, high


def _outer_root(count: float, other: float, level: float) -> float:
    """The v < log(count / (count + other)) where -count v - other log(1 - e^v) = level.

    The function is convex and decreasing on that side, so Newton's method started left of the
    root moves right, monotonically, onto it.
    """
    peak = math.log(count / (count + other))
    # Since -other log(1 - e^v) >= 0, the function is at least level wherever -count v >= level:
    # -level / count is left of the root (or on it) and Newton starts there. When that lies
    # right of the peak, the peak itself is inside the interval (its slope is 0), so the start
    # is moved left of it.
    v = -level / count
    if v >= peak:
        v = peak - 1.0
    for _ in range(_MAX_STEPS):
        share = math.exp(v)
        rest = -math.expm1(v)
        if other > 0 and rest <= 0:
            # v rounds to 0: the end lies closer to 1 than a float can tell.
            return v
        value = -count * v - (other * math.log(rest) if other > 0 else 0.0) - level
        slope = -count + (other * share / rest if other > 0 else 0.0)
        if slope >= 0:
            # Only at the minimum itself, which lies inside the interval: v is its end.
            return v
        step = value / slope
        v -= step
        if abs(step) < _TOLERANCE:
            break
    return min(v, peak)
