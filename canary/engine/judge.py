"""The verdict of one measurement against its metric: pass, fail or inconclusive.

The rules are a table (see tests/unit/engine/test_judge.py, one row per case) because their
combinations are where other controllers went wrong: Argo's limits and defaults once combined
into "Successful" with no data at all (argo-rollouts#4479). Here, a verdict of pass needs a real
value, inside the range, from enough requests. Everything else is a failure, or, for a metric
that may wait for data, inconclusive until its wait runs out.

A measured +Inf or -Inf (PromQL's x/0 for x != 0, e.g. errors over successes when nothing
succeeded) is a value, judged at once like any other (never "no data", which onNoData: wait
would forgive), and it never passes. Beyond a bound it fails that bound, as the number it is:
+Inf errors per success against `max: 0.01` is the worst ratio there is. On a side the range
leaves open it fails too: +Inf against `min: 99` is no success rate a query could mean, and a
pass needs a real number. Thresholds themselves are finite (the model refuses NaN and
infinities). histogram_quantile never gives +Inf for requests slower than every bucket: it
answers the largest finite bucket bound, so a latency max must lie below that bound to ever fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from canary.api import durations
from canary.api.comparison import Comparison
from canary.api.metrics import MetricCheck, MetricMode, NoDataPolicy
from canary.api.status import MeasurementKind, Verdict
from canary.engine.observation import Measurement


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    message: str


def missing(policy: NoDataPolicy, why: str, *, waited: float, wait_limit: float) -> Judgement:
    if policy is NoDataPolicy.WAIT and waited < wait_limit:
        return Judgement(Verdict.INCONCLUSIVE, f"{why}; waiting up to {wait_limit:g}s for data")
    if policy is NoDataPolicy.WAIT:
        return Judgement(Verdict.FAIL, f"{why} after waiting {wait_limit:g}s")
    return Judgement(Verdict.FAIL, why)


_PASSED = Judgement(Verdict.PASS, "")
_WHY_MISSING = {
    MeasurementKind.NO_DATA: "no data",
    MeasurementKind.NAN: "NaN (no requests in the window?)",
    MeasurementKind.ERROR: "query error",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """A metric check as judging reads it, worked out of the spec once per spec object: the
    passing range's bounds and text, the no-data wait in seconds, whether its verdict counts.
    """

    name: str
    low: float | None
    high: float | None
    min_requests: int | None
    # The passing range as text, e.g. ">= 99": kept on every record.
    threshold: str
    on_no_data: NoDataPolicy
    # None: wait up to the step's length.
    no_data_timeout: float | None
    enforced: bool
    # The comparison with stable (engine/comparing.py), when the check makes one.
    compare: Comparison | None = None
    # What a record shows as the check's threshold: the range, the comparison, or both.
    described: str = ""
    # Whether the check has a range to judge a value against (a field, not worked out from
    # the bounds: it is read for every check of every judged tick).
    has_range: bool = True

    def wait_limit(self, step_interval: float) -> float:
        """Seconds a check may wait for data: noDataTimeout, else the step's length."""
        return step_interval if self.no_data_timeout is None else self.no_data_timeout

    @classmethod
    def of(cls, check: MetricCheck) -> Rule:
        # A check that only compares has no range: every value lies inside its open sides
        # (the comparison itself is judged by engine/sequential.py).
        bounds = check.threshold_range
        threshold = bounds.describe() if bounds else ""
        compare = check.compare
        described = threshold
        if compare is not None:
            against = (
                f"vs {compare.against} (alpha {compare.alpha:g}, minEffect {compare.min_effect:g})"
            )
            described = f"{threshold}; {against}" if threshold else against
        return cls(
            name=check.name,
            low=bounds.min if bounds else None,
            high=bounds.max if bounds else None,
            min_requests=check.min_requests,
            threshold=threshold,
            on_no_data=check.on_no_data,
            no_data_timeout=(
                durations.seconds(check.no_data_timeout) if check.no_data_timeout else None
            ),
            enforced=check.mode is MetricMode.ENFORCE,
            compare=compare,
            described=described,
            has_range=bounds is not None and (bounds.min is not None or bounds.max is not None),
        )


def metric(
    check: MetricCheck, measurement: Measurement, *, waited: float, step_interval: float
) -> Judgement:
    """Judge `measurement`, taken `waited` seconds into a step that lasts `step_interval`."""
    return verdict(Rule.of(check), measurement, waited=waited, step_interval=step_interval)


def verdict(
    rule: Rule, measurement: Measurement, *, waited: float, step_interval: float
) -> Judgement:
    """`metric`, for a check already made a `Rule`: what the engine calls on every judged tick."""
    if not rule.has_range:
        # A check that only compares with stable has no value to judge: engine/comparing.py
        # judges its counts. Reaching here is a caller's mistake, and must not pass.
        return Judgement(Verdict.FAIL, "no thresholdRange: this check is judged by comparison")
    value = measurement.value
    minimum = rule.min_requests
    samples = measurement.samples
    if (
        value is not None
        and measurement.kind is MeasurementKind.VALUE
        and (minimum is None or (samples is not None and samples >= minimum))
    ):
        # A value from enough requests: it passes inside the range, and fails outside it.
        low, high = rule.low, rule.high
        if (low is None or value >= low) and (high is None or value <= high):
            if math.isfinite(value):
                return _PASSED
            return Judgement(
                Verdict.FAIL,
                f"{shown(value)} never passes, even against {rule.threshold} "
                "(a division by zero in the query?)",
            )
        return Judgement(Verdict.FAIL, f"{shown(value)} is outside {rule.threshold}")
    wait_limit = rule.wait_limit(step_interval)
    policy = rule.on_no_data
    if measurement.kind is not MeasurementKind.VALUE or value is None:
        why = _WHY_MISSING.get(measurement.kind, "no value")
        if measurement.message and measurement.kind is not MeasurementKind.NAN:
            why = f"{why}: {measurement.message}"
        return missing(policy, why, waited=waited, wait_limit=wait_limit)
    if minimum is not None:
        if samples is None:
            return missing(
                policy,
                "request count unknown for minRequests",
                waited=waited,
                wait_limit=wait_limit,
            )
        if samples < minimum:
            return missing(
                policy,
                f"{samples} requests, fewer than minRequests {minimum}",
                waited=waited,
                wait_limit=wait_limit,
            )
    raise AssertionError("unreachable: a value from enough requests is judged above")


def shown(value: float) -> str:
    """A measured value as a message shows it; the infinities as PromQL spells them."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:g}"


def gate(passed: bool, message: str) -> Judgement:
    if passed:
        return Judgement(Verdict.PASS, message)
    return Judgement(Verdict.FAIL, message or "webhook refused")
