"""The weights a managed route gets for a step, and how a written split reads as percentages.

Istio's destination weights are relative: since 1.15 any total but 0 is accepted, and istiod
hands them to Envoy as written (leaving out the zeros), so a subset's share of the traffic is
its weights' sum over the route's total. A route may hold the stable subset in several
destinations (two ports of the service, or the host under two names): writing 90 to each of two
and 10 to the canary would give the canary 10/190, 5.3%, not 10%.

The rule, for a step that gives the canary `c` percent:

- The stable destinations keep their written proportions `p` (reduced by their greatest common
  divisor; all equal when none holds a weight, as after a step at 100%), and so do the canary's
  `q` (usually one destination). A side whose reduced proportions add up to more than 100 is
  first brought to a total of 100 by largest remainders, so that no step makes weights grow.
- With `P = sum(p)`, `Q = sum(q)` and `L = lcm(P, Q)`, the route's total is `100 * L`: stable
  destination `i` gets `(100 - c) * p[i] * L / P`, canary destination `j` gets
  `c * q[j] * L / Q`, every other destination 0. Every weight is a whole number, so the canary's
  share is exactly `c` percent and the stable proportions are kept exactly from step to step.
  At 0 (or 100) only the side with traffic counts: `L = P` (or `Q`), so a split written at 0
  or 100 is written the same way again.
- One stable and one canary destination (the common route) make `L = 1`: a total of 100, the
  90/10 everyone expects to read. Two equal stable destinations make 90/90/20 (total 200).
- Read back, a subset's percentage is its share of whatever total is written (180/20 is 90/10);
  one that is not a whole percentage is rounded, never to 0 or 100 (see `percent`).

The largest total is 100 * lcm of two numbers up to 100, below 10^6, well inside Istio's int32
and Envoy's uint32 weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import gcd, lcm
from typing import Any

# A side's proportions are kept below this total, so the route's total stays below 100 * 100 * 99.
MAX_PROPORTION_TOTAL = 100


def written(value: Any) -> int:
    """A destination's weight as Istio counts it: absent, negative or not a whole number is 0
    (the API server refuses those, so they come only from hand-made objects)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def proportions(weights: Sequence[int]) -> list[int]:
    """The written weights of one side reduced to their smallest whole proportions."""
    if not weights:
        return []
    if sum(weights) == 0:
        return [1] * len(weights)
    found = _reduced(weights)
    if sum(found) > MAX_PROPORTION_TOTAL:
        found = _reduced(_largest_remainders(found, MAX_PROPORTION_TOTAL))
    return found


def split(canary_weight: int, stable: Sequence[int], canary: Sequence[int]) -> list[int]:
    """The new weights of the stable destinations, then of the canary's, for a step giving the
    canary `canary_weight` percent; `stable` and `canary` are their weights as written now."""
    if not 0 <= canary_weight <= 100:
        raise ValueError(f"canary weight {canary_weight} is outside 0..100")
    p, q = proportions(stable), proportions(canary)
    big_p, big_q = sum(p) or 1, sum(q) or 1
    # A side that gets nothing does not make the total grow: the split written at 0 or at 100
    # is written the same way again.
    common = big_p if canary_weight == 0 else big_q if canary_weight == 100 else lcm(big_p, big_q)
    return [(100 - canary_weight) * share * common // big_p for share in p] + [
        canary_weight * share * common // big_q for share in q
    ]


def percent(weight: int, total: int) -> int:
    """`weight` of `total` in percent; a share strictly between none and all is rounded to the
    nearest whole percent but kept within 1..99, so it never reads as none or all."""
    whole, rest = divmod(weight * 100, total)
    if rest == 0:
        return whole
    return min(99, max(1, round(Fraction(weight * 100, total))))


def _reduced(weights: Sequence[int]) -> list[int]:
    divisor = 0
    for weight in weights:
        divisor = gcd(divisor, weight)
    return [weight // divisor for weight in weights]


def _largest_remainders(weights: Sequence[int], total: int) -> list[int]:
    written_total = sum(weights)
    exact = [Fraction(weight * total, written_total) for weight in weights]
    floors = [int(share) for share in exact]
    short = total - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - floors[i], reverse=True)
    for index in by_remainder[:short]:
        floors[index] += 1
    return floors
