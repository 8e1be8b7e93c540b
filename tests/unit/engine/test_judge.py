"""The verdict table: every combination of measurement kind, guard and no-data policy."""

from __future__ import annotations

import pytest

from canary.api.metrics import MetricCheck
from canary.api.status import MeasurementKind, Verdict
from canary.engine import judge
from canary.engine.observation import Measurement


def _metric(**extra: object) -> MetricCheck:
    return MetricCheck.model_validate(
        {"name": "request-success-rate", "thresholdRange": {"min": 99}, **extra}
    )


PASS, FAIL, WAIT = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE

ROWS = [
    # (metric settings, measurement, seconds into the step, expected verdict, words in message)
    ({}, Measurement.of(99.5, samples=500), 10, PASS, ""),
    ({}, Measurement.of(99.0, samples=500), 10, PASS, ""),
    ({}, Measurement.of(98.9, samples=500), 10, FAIL, "98.9 is outside >= 99"),
    ({}, Measurement.no_data(), 10, FAIL, "no data"),
    ({}, Measurement.of(float("nan")), 10, FAIL, "NaN"),
    ({}, Measurement.error("connection refused"), 10, FAIL, "query error: connection refused"),
    ({"onNoData": "wait"}, Measurement.no_data(), 10, WAIT, "waiting up to 30s"),
    ({"onNoData": "wait"}, Measurement.no_data(), 30, FAIL, "after waiting 30s"),
    ({"onNoData": "wait", "noDataTimeout": "5s"}, Measurement.no_data(), 10, FAIL, "5s"),
    ({"onNoData": "wait"}, Measurement.of(float("nan")), 29, WAIT, "NaN"),
    ({"onNoData": "wait"}, Measurement.error("timeout"), 29, WAIT, "query error"),
    ({"minRequests": 100}, Measurement.of(100.0, samples=3), 10, FAIL, "3 requests, fewer than"),
    ({"minRequests": 100}, Measurement.of(100.0), 10, FAIL, "request count unknown"),
    ({"minRequests": 100, "onNoData": "wait"}, Measurement.of(100.0, samples=3), 10, WAIT, ""),
    ({"minRequests": 100}, Measurement.of(99.5, samples=100), 10, PASS, ""),
    # A guard never turns a bad value into a pass, nor a good one measured on too few requests.
    ({"minRequests": 100}, Measurement.of(50.0, samples=1000), 10, FAIL, "outside"),
    ({"thresholdRange": {"max": 500}}, Measurement.of(500.0), 10, PASS, ""),
    ({"thresholdRange": {"max": 500}}, Measurement.of(500.1), 10, FAIL, "outside <= 500"),
    ({"thresholdRange": {"min": 1, "max": 2}}, Measurement.of(0.0), 10, FAIL, "outside 1..2"),
    # Zero is a value like any other, not "missing": a 0% success rate fails on its merits.
    ({}, Measurement.of(0.0, samples=1000), 10, FAIL, "0 is outside"),
]


@pytest.mark.parametrize(("settings", "measurement", "waited", "expected", "words"), ROWS)
def test_verdict_table(
    settings: dict[str, object],
    measurement: Measurement,
    waited: float,
    expected: Verdict,
    words: str,
) -> None:
    """Each row: a metric, what came back, and the only verdict that is right for it."""
    result = judge.metric(_metric(**settings), measurement, waited=waited, step_interval=30)
    assert result.verdict is expected
    assert words in result.message


def test_unknown_data_is_never_a_pass() -> None:
    """No kind of missing value passes, whatever the policy and however long it waited."""
    for kind in (MeasurementKind.NO_DATA, MeasurementKind.NAN, MeasurementKind.ERROR):
        for policy in ("fail", "wait"):
            for waited in (0, 15, 30, 1000):
                result = judge.metric(
                    _metric(onNoData=policy),
                    Measurement(kind),
                    waited=waited,
                    step_interval=30,
                )
                assert result.verdict is not Verdict.PASS


def test_nan_from_a_provider_is_its_own_kind() -> None:
    """A float NaN handed to Measurement.of becomes kind nan, never a value."""
    assert Measurement.of(float("nan")).kind is MeasurementKind.NAN
    assert Measurement.of(float("nan")).value is None


def test_gate_verdicts() -> None:
    """A webhook that answers no is a failure that says why."""
    assert judge.gate(True, "").verdict is Verdict.PASS
    refused = judge.gate(False, "")
    assert refused.verdict is Verdict.FAIL
    assert refused.message == "webhook refused"
