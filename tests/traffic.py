"""Whole rollouts on synthetic traffic, judged by the sequential comparison alone, in microseconds.

Because `engine/sequential.py` is pure, a rollout is a loop: every `check_s` seconds of a step,
each side served a Poisson number of requests (its share of `rps`), each request failed with its
side's probability (a Bernoulli trial, drawn exactly by geometric skips, not the Poisson model the
test assumes), and the test reads the counts since the step's start, as the controller will from
Prometheus. A rollout ends at a proven regression (the rollback) or after its last step.

Used by tests/unit/engine/test_sequential.py (the false-alarm bound over 10,000 A/A rollouts)
and benchmarks/bench_sequential.py (detection time and requests exposed over a grid of effects).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from canary.api.comparison import Comparison, ComparisonVerdict
from canary.engine import sequential

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Rollout:
    weights: tuple[int, ...] = (5, 10, 20, 50)
    step_s: float = 60.0
    check_s: float = 10.0
    rps: float = 50.0
    stable_rate: float = 0.01
    # The canary's rate over stable's: 1 for A/A.
    ratio: float = 1.0


@dataclass(frozen=True, slots=True)
class Outcome:
    regression_at: float | None
    equivalent_at: float | None
    # Canary requests and bad events served until the regression was proven (or in all).
    canary_requests: float
    canary_bad: float


def run(rollout: Rollout, comparison: Comparison, rng: random.Random) -> Outcome:
    state = sequential.start("sim", revision="r", comparison=comparison)
    canary_rate = min(rollout.stable_rate * rollout.ratio, 1.0)
    equivalent_at: float | None = None
    served_requests = served_bad = 0.0
    now = 0.0
    checks = max(1, round(rollout.step_s / rollout.check_s))
    for step, weight in enumerate(rollout.weights):
        share = weight / 100
        counts = [0, 0, 0, 0]
        for _ in range(checks):
            now += rollout.check_s
            canary = poisson(rng, rollout.rps * rollout.check_s * share)
            stable = poisson(rng, rollout.rps * rollout.check_s * (1 - share))
            counts[0] += canary
            counts[1] += binomial(rng, canary, canary_rate)
            counts[2] += stable
            counts[3] += binomial(rng, stable, rollout.stable_rate)
            state = sequential.observe(
                state,
                step=step,
                since=T0 + timedelta(seconds=step * rollout.step_s),
                counts=sequential.Counts(*map(float, counts)),
            ).state
            served_requests, served_bad = state.canary_requests, state.canary_bad
            if state.verdict is ComparisonVerdict.REGRESSION:
                return Outcome(now, equivalent_at, served_requests, served_bad)
            if equivalent_at is None and state.verdict is ComparisonVerdict.EQUIVALENT:
                equivalent_at = now
    return Outcome(None, equivalent_at, served_requests, served_bad)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: by inversion for small means, else the normal approximation (requests
    are what the test conditions on, so their exact law does not bear on its validity)."""
    if mean <= 0:
        return 0
    if mean > 40:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def binomial(rng: random.Random, trials: int, p: float) -> int:
    """How many of `trials` Bernoulli(p) requests failed: exact, by geometric gaps between
    failures (about trials * p + 1 draws instead of `trials`)."""
    if p <= 0 or trials <= 0:
        return 0
    if p >= 1:
        return trials
    log_q = math.log1p(-p)
    position, count = 0, 0
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > trials:
            return count
        count += 1


def peeking_z_test(rollout: Rollout, alpha: float, rng: random.Random) -> bool:
    """Whether a fixed-horizon one-sided z-test of the two rates, looked at every check as a
    naive judge would, ever rejects: the harness's proof that it can see a broken bound."""
    z_alpha = _z_quantile(1 - alpha)
    canary_rate = min(rollout.stable_rate * rollout.ratio, 1.0)
    n_c = x = n_s = y = 0
    checks = max(1, round(rollout.step_s / rollout.check_s))
    for weight in rollout.weights:
        share = weight / 100
        for _ in range(checks):
            canary = poisson(rng, rollout.rps * rollout.check_s * share)
            stable = poisson(rng, rollout.rps * rollout.check_s * (1 - share))
            n_c, n_s = n_c + canary, n_s + stable
            x += binomial(rng, canary, canary_rate)
            y += binomial(rng, stable, rollout.stable_rate)
            pooled = (x + y) / (n_c + n_s) if n_c + n_s else 0.0
            spread = math.sqrt(pooled * (1 - pooled) * (1 / max(n_c, 1) + 1 / max(n_s, 1)))
            if n_c and n_s and spread > 0 and (x / n_c - y / n_s) / spread > z_alpha:
                return True
    return False


def _z_quantile(level: float) -> float:
    low, high = -10.0, 10.0
    for _ in range(100):
        middle = (low + high) / 2
        if 0.5 * math.erfc(-middle / math.sqrt(2)) < level:
            low = middle
        else:
            high = middle
    return low
