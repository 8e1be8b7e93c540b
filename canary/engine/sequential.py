"""The sequential comparison of canary with stable: an anytime-valid test on counts of bad events.

Why sequential. A fixed-horizon test (Kayenta's Mann-Whitney) looked at every few seconds
raises false alarms far above its level: Netflix saw 66 of 100 A/A runs rejected. The tests here
are e-processes (Lindon, Sanden, Shirikian, "Rapid Regression Detection in Software Deployments
through Sequential Testing", KDD 2022; Lindon and Malek, "Anytime-Valid Inference for Multinomial
Count Data", NeurIPS 2022): nonnegative supermartingales with mean at most one under the null
hypothesis, so by Ville's inequality the chance that one ever reaches 1/alpha, however often it
is looked at, is at most alpha.

The model. In a stretch of time where the canary served n_c requests and stable n_s, let its
bad events (5xx, requests slower than a bound, any counter) arrive at rate rho times stable's.
Given m bad events in all, each is the canary's with probability

    theta(rho) = rho n_c / (rho n_c + n_s),

and the canary's count x is Binomial(m, theta(rho)) (exact for Poisson arrivals, as in Lindon et
al.; for Bernoulli requests it is the usual rare-event reading, and the simulations in
tests/unit/engine/test_sequential.py draw Bernoulli requests and still keep the bound). The
stretch's likelihood ratio of rho against 1 is

    L(rho) = rho^x * ((n_c + n_s) / (rho n_c + n_s))^m.

The traffic share changes at every step, and the test carries it: each reading contributes its
own L(rho), with its own n_c and n_s (the requests as counted, not the configured weights), and
the products over all readings, under ONE mixture over rho shared by the whole rollout, form the
e-process. A product of conditional likelihood ratios is a test martingale under rho = 1 whatever
the shares, and a mixture of test martingales is one too. Chosen over a test per step with alpha
spent across steps because evidence from every step adds up (the 5% step's few bad events count
at the 10% step), no alpha is wasted on steps a rollout never reaches, and the state is one
vector, not one per step.

Two e-processes run on the same products:
- regression, against H0: rho <= 1, mixing rho over the grid points above 1 (weights 1/rho).
  For rho' > 1, L(rho') grows with x, and x is stochastically smaller under any rho <= 1 than
  under 1, so each factor has mean at most one under all of H0: a supermartingale, and Ville
  holds for the whole null.
- equivalence, against H0': rho >= minEffect, mixing L(rho') / L(minEffect) over the grid points
  in [1/minEffect, minEffect). The mirror argument holds it under all of H0'.
Regression proven is final (the chance of ever reaching it under H0 is what alpha bounds);
equivalence shown is final too, but a later regression still overrides it.

The mixture is a discrete prior on a fixed grid of ratios, evenly spaced in log rho, so an update
is a few dozen `math.log` calls and a reading with no bad events costs nothing (L = 1). The grid
is part of the stored state's meaning: changing it starts stored tests over.

Readings are cumulative counts since the step's clock started (as Prometheus gives them over
the step's exact window); the state keeps the last one and the window's start, so each request
is seen once. A window is a step and its start: a step whose clock starts over (drift, a
suspension) counts from zero again, as a new step does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from canary.api.comparison import (
    Comparison,
    ComparisonRecord,
    ComparisonVerdict,
    RateEstimate,
    SequentialState,
)
from canary.engine import confidence, records

# Ratios exp(k h) for k in -14..24, h = log(50) / 24: from 0.10 to 50, about 18% apart.
_SPACING = math.log(50.0) / 24
GRID: tuple[float, ...] = tuple(math.exp(k * _SPACING) for k in range(-14, 25))
_LOG_GRID = tuple(math.log(ratio) for ratio in GRID)
# The regression mixture: every grid point above 1, weighed in proportion to 1/rho. Leaning to
# the small effects a bad canary usually has gains power there (1.5x proven in 26% of simulated
# rollouts instead of 19%, 2x in 93% instead of 88%) and costs nothing on large ones, which the
# first reading proves either way. Any prior fixed in advance keeps the bound.
_ABOVE_ONE = tuple(index for index, ratio in enumerate(GRID) if ratio > 1.0 + 1e-12)
_LOG_NORMALISER = math.log(sum(1.0 / GRID[index] for index in _ABOVE_ONE))
REGRESSION_PRIOR: tuple[float, ...] = tuple(
    1.0 / GRID[index] / math.exp(_LOG_NORMALISER) for index in _ABOVE_ONE
)
_LOG_REGRESSION_WEIGHTS = tuple(-_LOG_GRID[index] - _LOG_NORMALISER for index in _ABOVE_ONE)
# The grid is sorted, so the points above one are its tail: a slice, read on every reading.
_FIRST_ABOVE_ONE = _ABOVE_ONE[0]
assert tuple(range(_FIRST_ABOVE_ONE, len(GRID))) == _ABOVE_ONE
_GRID_LESS_ONE = tuple(ratio - 1.0 for ratio in GRID)
# More requests than a step of any service serves: a reading beyond it is a broken query, and
# sums of such would leave the floats JSON (the status) can hold.
MAX_COUNT = 1e15
# A count may exceed its total by this much before it is refused: increase() extrapolates.
_SLACK = 1e-6


@dataclass(frozen=True, slots=True)
class Counts:
    """One reading: each side's requests and bad events since the window began (`since`)."""

    canary_requests: float
    canary_bad: float
    stable_requests: float
    stable_bad: float


@dataclass(frozen=True, slots=True)
class Outcome:
    state: SequentialState
    record: ComparisonRecord


def start(name: str, *, revision: str, comparison: Comparison) -> SequentialState:
    """A test with nothing seen yet, for `revision`."""
    return _state(
        name=name,
        revision=revision,
        alpha=comparison.alpha,
        min_effect=comparison.min_effect,
        step=0,
        since=None,
        step_counts=(0.0, 0.0, 0.0, 0.0),
        totals=(0.0, 0.0, 0.0, 0.0),
        log_evidence=(0.0,) * len(GRID),
        log_evidence_min_effect=0.0,
        verdict=ComparisonVerdict.UNDECIDED,
        decided_after=None,
    )


def observe(state: SequentialState, *, step: int, since: datetime, counts: Counts) -> Outcome:
    """The test after one more reading of `step`, counted since `since` (the step's clock
    start): the new state and the tick's record.

    Counts that cannot be (negative, not finite, more bad events than requests, fewer than the
    window's last reading, an earlier window) change nothing: the record keeps the state's verdict
    and says why, so the caller can judge it like a measurement with no data.
    """
    problem = _problem(state, step=step, since=since, counts=counts)
    if problem:
        return Outcome(state, record(state, message=problem))
    fresh = (
        counts.canary_requests,
        counts.canary_bad,
        counts.stable_requests,
        counts.stable_bad,
    )
    if (step, since) == (state.step, state.since):
        before = (
            state.step_canary_requests,
            state.step_canary_bad,
            state.step_stable_requests,
            state.step_stable_bad,
        )
        delta = tuple(now - then for now, then in zip(fresh, before, strict=True))
    else:
        delta = fresh
    n_c, x, n_s, y = delta
    log_evidence = state.log_evidence
    log_min_effect = state.log_evidence_min_effect
    bad = x + y
    if bad > 0 and n_c > 0:
        share = n_c / (n_c + n_s)
        # log L(rho) = x log rho - m log(1 + p (rho - 1)), p the canary's share of requests.
        log1p = math.log1p
        log_evidence = tuple(
            [
                total + x * log_ratio - bad * log1p(share * less_one)
                for total, less_one, log_ratio in zip(
                    log_evidence, _GRID_LESS_ONE, _LOG_GRID, strict=True
                )
            ]
        )
        log_min_effect += x * math.log(state.min_effect) - bad * math.log1p(
            share * (state.min_effect - 1.0)
        )
    totals = (
        state.canary_requests + n_c,
        state.canary_bad + x,
        state.stable_requests + n_s,
        state.stable_bad + y,
    )
    regression = _log_regression(log_evidence)
    equivalence = _log_equivalence(log_evidence, log_min_effect, state.min_effect)
    verdict, decided_after = _verdict(state, regression, equivalence, totals[0])
    new = _state(
        name=state.name,
        revision=state.revision,
        alpha=state.alpha,
        min_effect=state.min_effect,
        step=step,
        since=since,
        step_counts=fresh,
        totals=totals,
        log_evidence=log_evidence,
        log_evidence_min_effect=log_min_effect,
        verdict=verdict,
        decided_after=decided_after,
    )
    return Outcome(new, _record(new, regression, equivalence, ""))


def log_regression_evidence(state: SequentialState) -> float:
    """The log e-value against H0: the canary's rate is at most stable's."""
    if len(state.log_evidence) != len(GRID):
        return 0.0
    return _log_regression(state.log_evidence)


def log_equivalence_evidence(state: SequentialState) -> float:
    """The log e-value against H0': the canary's rate is minEffect times stable's or more."""
    if len(state.log_evidence) != len(GRID):
        return 0.0
    return _log_equivalence(state.log_evidence, state.log_evidence_min_effect, state.min_effect)


def record(state: SequentialState, *, message: str = "") -> ComparisonRecord:
    """What a tick records: the verdict, both e-values, each side's rate with its interval."""
    return _record(state, log_regression_evidence(state), log_equivalence_evidence(state), message)


def _record(
    state: SequentialState, regression: float, equivalence: float, message: str
) -> ComparisonRecord:
    return records.built(
        ComparisonRecord,
        {
            "verdict": state.verdict,
            "regression_evidence": _shown(regression),
            "equivalence_evidence": _shown(equivalence),
            "threshold": 1.0 / state.alpha,
            "canary": _estimate(state.canary_bad, state.canary_requests, state.alpha),
            "stable": _estimate(state.stable_bad, state.stable_requests, state.alpha),
            "decided_after": state.decided_after,
            "message": message,
        },
    )


def _log_regression(log_evidence: tuple[float, ...]) -> float:
    return _log_sum_exp(
        [
            value + weight
            for value, weight in zip(
                log_evidence[_FIRST_ABOVE_ONE:], _LOG_REGRESSION_WEIGHTS, strict=True
            )
        ]
    )


def _verdict(
    state: SequentialState, regression: float, equivalence: float, canary_requests: float
) -> tuple[ComparisonVerdict, float | None]:
    """The verdict after a reading whose log e-values are `regression` and `equivalence`."""
    if state.verdict is ComparisonVerdict.REGRESSION:
        return state.verdict, state.decided_after
    level = math.log(1.0 / state.alpha)
    if regression >= level:
        return ComparisonVerdict.REGRESSION, canary_requests
    if state.verdict is ComparisonVerdict.EQUIVALENT:
        return state.verdict, state.decided_after
    if equivalence >= level:
        return ComparisonVerdict.EQUIVALENT, canary_requests
    return ComparisonVerdict.UNDECIDED, None


def _log_equivalence(
    log_evidence: tuple[float, ...], at_min_effect: float, min_effect: float
) -> float:
    first, end = _equivalence_window(min_effect)
    total = _log_sum_exp(log_evidence[first:end]) - math.log(end - first)
    return total - at_min_effect


_windows: dict[float, tuple[int, int]] = {}


def _equivalence_window(min_effect: float) -> tuple[int, int]:
    """The grid points the equivalence mixture weighs equally, [1/minEffect, minEffect), as
    the slice [first, end) of the sorted grid."""
    window = _windows.get(min_effect)
    if window is None:
        low = 1.0 / min_effect - 1e-12
        inside = [index for index, ratio in enumerate(GRID) if low <= ratio < min_effect - 1e-12]
        # minEffect > 1 always admits rho = 1 itself; the guard is for a grid changed carelessly.
        assert inside, f"no grid point below minEffect {min_effect}"
        window = _windows[min_effect] = (inside[0], inside[-1] + 1)
    return window


def _log_sum_exp(items: Sequence[float]) -> float:
    """log(sum(exp(v))) without overflow."""
    top = max(items)
    exp = math.exp
    return top + math.log(sum([exp(value - top) for value in items]))


def _shown(log_value: float) -> float:
    # The status is JSON: an e-value beyond a float's range is shown as the largest one.
    return math.exp(min(log_value, 700.0))


def _estimate(bad: float, requests: float, alpha: float) -> RateEstimate:
    low, high = confidence.interval(bad, requests, alpha=alpha)
    return records.built(
        RateEstimate,
        {
            "requests": requests,
            "bad": bad,
            "rate": bad / requests if requests > 0 else None,
            "low": low,
            "high": high,
        },
    )


def _problem(state: SequentialState, *, step: int, since: datetime, counts: Counts) -> str:
    if len(state.log_evidence) != len(GRID):
        return (
            f"the stored test has {len(state.log_evidence)} grid points, this engine "
            f"{len(GRID)}; it cannot carry it on"
        )
    sides = (
        ("canary", counts.canary_requests, counts.canary_bad),
        ("stable", counts.stable_requests, counts.stable_bad),
    )
    for side, requests, bad in sides:
        for what, value in (("requests", requests), ("bad events", bad)):
            if not math.isfinite(value) or value < 0:
                return f"{side} {what}: {value!r} is not a count; reading ignored"
            if value > MAX_COUNT:
                return f"{side} {what}: {value:g} is more than any service serves; reading ignored"
        if bad > requests * (1 + _SLACK) + _SLACK:
            return f"{side}: {bad:g} bad events of {requests:g} requests; reading ignored"
    if step < state.step:
        return f"step {step} is before step {state.step} already judged; reading ignored"
    if step == state.step and state.since is not None and since < state.since:
        return (
            f"step {step}'s window from {since.isoformat()} began before the one already "
            f"counted ({state.since.isoformat()}); reading ignored"
        )
    if (step, since) == (state.step, state.since):
        before = (
            ("canary requests", state.step_canary_requests, counts.canary_requests),
            ("canary bad events", state.step_canary_bad, counts.canary_bad),
            ("stable requests", state.step_stable_requests, counts.stable_requests),
            ("stable bad events", state.step_stable_bad, counts.stable_bad),
        )
        for what, then, now in before:
            if now < then:
                return (
                    f"{what} went down from {then:g} to {now:g} within step {step} "
                    "(counts are since the step's start); reading ignored"
                )
    return ""


def _state(
    *,
    name: str,
    revision: str,
    alpha: float,
    min_effect: float,
    step: int,
    since: datetime | None,
    step_counts: tuple[float, ...],
    totals: tuple[float, ...],
    log_evidence: tuple[float, ...],
    log_evidence_min_effect: float,
    verdict: ComparisonVerdict,
    decided_after: float | None,
) -> SequentialState:
    return records.built(
        SequentialState,
        {
            "name": name,
            "revision": revision,
            "alpha": alpha,
            "min_effect": min_effect,
            "step": step,
            "since": since,
            "step_canary_requests": step_counts[0],
            "step_canary_bad": step_counts[1],
            "step_stable_requests": step_counts[2],
            "step_stable_bad": step_counts[3],
            "canary_requests": totals[0],
            "canary_bad": totals[1],
            "stable_requests": totals[2],
            "stable_bad": totals[3],
            "log_evidence": log_evidence,
            "log_evidence_min_effect": log_evidence_min_effect,
            "verdict": verdict,
            "decided_after": decided_after,
        },
    )
