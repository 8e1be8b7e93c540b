"""The verdict of one measurement against its metric: pass, fail or inconclusive.

The rules are a table (see tests/unit/engine/test_judge.py, one row per case) because their
combinations are where other controllers went wrong: Argo's limits and defaults once combined
into "Successful" with no data at all (argo-rollouts#4479). Here, a verdict of pass needs a real
value, inside the range, from enough requests. Everything else is a failure, or, for a metric
that may wait for data, inconclusive until its wait runs out.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.api import durations
from canary.api.metrics import MetricCheck, NoDataPolicy
from canary.api.status import MeasurementKind, Verdict
from canary.engine.observation import Measurement


# Not frozen, for the same reason as engine.tick.Tick: one is made per judged measurement.
@dataclass(slots=True)
class Judgement:
    verdict: Verdict
    message: str


def _missing(metric: MetricCheck, why: str, *, waited: float, wait_limit: float) -> Judgement:
    if metric.on_no_data is NoDataPolicy.WAIT and waited < wait_limit:
        return Judgement(Verdict.INCONCLUSIVE, f"{why}; waiting up to {wait_limit:g}s for data")
    if metric.on_no_data is NoDataPolicy.WAIT:
        return Judgement(Verdict.FAIL, f"{why} after waiting {wait_limit:g}s")
    return Judgement(Verdict.FAIL, why)


_PASSED = Judgement(Verdict.PASS, "")


def metric(
    check: MetricCheck, measurement: Measurement, *, waited: float, step_interval: float
) -> Judgement:
    """Judge `measurement`, taken `waited` seconds into a step that lasts `step_interval`."""
    value = measurement.value
    if (
        value is not None
        and measurement.kind is MeasurementKind.VALUE
        and (
            check.min_requests is None
            or (measurement.samples is not None and measurement.samples >= check.min_requests)
        )
    ):
        # The common case first, and cheaply: a value from enough requests.
        if check.threshold_range.holds(value):
            return _PASSED
        return Judgement(Verdict.FAIL, f"{value:g} is outside {check.threshold_range.describe()}")
    wait_limit = (
        durations.seconds(check.no_data_timeout) if check.no_data_timeout else step_interval
    )
    if measurement.kind is not MeasurementKind.VALUE or value is None:
        why = {
            MeasurementKind.NO_DATA: "no data",
            MeasurementKind.NAN: "NaN (no requests in the window?)",
            MeasurementKind.ERROR: "query error",
        }.get(measurement.kind, "no value")
        if measurement.message and measurement.kind is not MeasurementKind.NAN:
            why = f"{why}: {measurement.message}"
        return _missing(check, why, waited=waited, wait_limit=wait_limit)
    if check.min_requests is not None:
        if measurement.samples is None:
            return _missing(
                check, "request count unknown for minRequests", waited=waited, wait_limit=wait_limit
            )
        if measurement.samples < check.min_requests:
            return _missing(
                check,
                f"{measurement.samples} requests, fewer than minRequests {check.min_requests}",
                waited=waited,
                wait_limit=wait_limit,
            )
    raise AssertionError("unreachable: a value from enough requests is judged above")


def gate(passed: bool, message: str) -> Judgement:
    if passed:
        return Judgement(Verdict.PASS, message)
    return Judgement(Verdict.FAIL, message or "webhook refused")
