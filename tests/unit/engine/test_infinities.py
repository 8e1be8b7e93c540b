"""+Inf and -Inf from a provider: a value judged at once, failing the bound it is beyond, never a
pass (see engine/judge.py), and recorded so that JSON, and the API server, can hold the status."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from canary.api.metrics import MetricCheck
from canary.api.status import CanaryStatus, ChaosPhase, MeasurementKind, Phase, Verdict
from canary.engine import judge
from canary.engine.decide import decide
from canary.engine.observation import Measurement
from tests.unit.engine import builders, test_chaos

INF = math.inf
RANGES = [{"min": 99}, {"max": 500}, {"min": 1, "max": 2}, {"min": -5}, {"max": -5}]


def _metric(limits: dict[str, float], **extra: object) -> MetricCheck:
    return MetricCheck.model_validate(
        {"name": "request-success-rate", "thresholdRange": limits, **extra}
    )


@pytest.mark.parametrize("limits", RANGES)
@pytest.mark.parametrize("value", [INF, -INF])
@pytest.mark.parametrize("policy", ["fail", "wait"])
def test_an_infinity_fails_at_once_whatever_the_range_and_policy(
    limits: dict[str, float], value: float, policy: str
) -> None:
    """Judged as a value, so onNoData: wait does not forgive it, however early in the step."""
    measured = Measurement.of(value, samples=1000)
    assert measured.kind is MeasurementKind.VALUE
    result = judge.metric(_metric(limits, onNoData=policy), measured, waited=0, step_interval=60)
    assert result.verdict is Verdict.FAIL
    assert ("+Inf" if value > 0 else "-Inf") in result.message


@pytest.mark.parametrize(
    ("limits", "value", "words"),
    [
        # Beyond the bound: fails it like any number would.
        ({"max": 500}, INF, "+Inf is outside <= 500"),
        ({"min": 99}, -INF, "-Inf is outside >= 99"),
        ({"min": 1, "max": 2}, INF, "+Inf is outside 1..2"),
        # On the side the range leaves open: would pass as a number, never does.
        ({"min": 99}, INF, "+Inf never passes, even against >= 99"),
        ({"max": 500}, -INF, "-Inf never passes, even against <= 500"),
    ],
)
def test_the_message_says_which_rule_failed_it(
    limits: dict[str, float], value: float, words: str
) -> None:
    result = judge.metric(_metric(limits), Measurement.of(value), waited=10, step_interval=60)
    assert result.verdict is Verdict.FAIL
    assert words in result.message


def test_too_few_requests_is_judged_before_the_value() -> None:
    """An infinity from too few requests is inconclusive like any value from too few: the
    minRequests guard comes first, and it never turns into a pass."""
    metric = _metric({"max": 500}, minRequests=100, onNoData="wait")
    result = judge.metric(metric, Measurement.of(INF, samples=3), waited=0, step_interval=60)
    assert result.verdict is Verdict.INCONCLUSIVE
    late = judge.metric(metric, Measurement.of(INF, samples=3), waited=60, step_interval=60)
    assert late.verdict is Verdict.FAIL


def test_the_threshold_range_never_holds_an_infinity() -> None:
    limits = _metric({"min": 99}).threshold_range
    assert limits is not None
    assert limits.holds(99.5)
    assert not limits.holds(INF)
    assert not limits.holds(math.nan)


@pytest.mark.parametrize("value", [INF, -INF])
def test_a_judged_infinity_is_a_counted_failure_and_a_status_json_can_hold(value: float) -> None:
    """Through decide: the failed check counts, the record keeps null for the value (JSON has no
    infinity) and names it in its message, and the whole status serialises strictly."""
    spec = builders.make_spec(threshold=1)
    split = {"v1": 90, "v2": 10}
    status = decide(spec, CanaryStatus(), builders.seen(spec, {"v1": 100, "v2": 0}), builders.at(0))
    status = status.status
    status = decide(spec, status, builders.seen(spec, split), builders.at(10)).status
    assert status.phase is Phase.PROGRESSING
    values = {"request-success-rate": Measurement.of(value, samples=1000)}
    decision = decide(spec, status, builders.seen(spec, split, values=values), builders.at(45))
    after = decision.status
    assert after.failed_checks == 1
    assert after.phase is Phase.ROLLING_BACK
    (check,) = after.checks
    assert (check.kind, check.value, check.verdict) == (MeasurementKind.VALUE, None, Verdict.FAIL)
    assert ("+Inf" if value > 0 else "-Inf") in check.message
    wire = json.dumps(after.to_wire(), allow_nan=False)
    assert CanaryStatus.model_validate(json.loads(wire)).checks == after.checks


@pytest.mark.parametrize("name", ["requests", "ejections", "success_rate"])
@pytest.mark.parametrize("value", [INF, -INF])
def test_an_infinity_in_a_chaos_reading_proves_nothing(name: str, value: float) -> None:
    """An experiment's expectation is never met by an infinity (unknown, like no data), and the
    result it records holds no infinity either: it would make the status unwritable."""
    broken = replace(test_chaos.reading(), **{name: Measurement.of(value)})
    world = test_chaos.World(test_chaos.chaos_spec(), read=lambda window: broken)
    world.run_until(test_chaos.finished)
    [result] = world.status.chaos
    assert result.phase is ChaosPhase.FAILED
    assert ("+Inf" if value > 0 else "-Inf") in result.message
    json.dumps(world.status.to_wire(), allow_nan=False)
