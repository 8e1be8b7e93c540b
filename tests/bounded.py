"""Hypothesis strategies at the model's bounds: specs whose every duration, weight, count and
threshold is drawn from its extremes (or anywhere between), and worlds that answer with the
extremes a provider can send (+Inf, -Inf, NaN, the largest floats, huge request counts) on a
clock that starts anywhere from 2020 to 2100 and may jump by a week between two ticks.

tests/strategies.py draws the everyday specs the rollout properties are about; these are the
ones a user can write but nobody tests by hand, for `decide` must never raise on any of them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from canary.api import builtins
from canary.api.metrics import (
    MAX_MIN_REQUESTS,
    MetricCheck,
    MetricMode,
    NoDataPolicy,
    ThresholdRange,
)
from canary.api.spec import MAX_THRESHOLD, CanarySpec, WebhookType
from canary.api.status import Phase
from canary.engine.observation import ChaosReading, GateResult, Measurement

DAY, DEADLINE, WEEK = 24 * 3600, 72 * 3600, 168 * 3600
BIG = sys.float_info.max
TINY = sys.float_info.min * sys.float_info.epsilon  # the smallest positive float
# Bounds a user may write: the finite extremes of a float, zero and its neighbours, a usual SLO.
EDGE_BOUNDS = (-BIG, -1e300, -TINY, 0.0, TINY, 1.0, 99.9, 1e300, BIG)
# Answers a provider can send besides a usual value: every one of them must be judged calmly.
EDGE_VALUES = (
    float("inf"),
    float("-inf"),
    float("nan"),
    BIG,
    -BIG,
    TINY,
    -0.0,
    0.0,
)
EDGE_SAMPLES = (None, 0, 1, MAX_MIN_REQUESTS - 1, MAX_MIN_REQUESTS, 2**63 - 1)
CHAOS_SECONDS = 1


def seconds(lowest: int, highest: int) -> st.SearchStrategy[int]:
    """A length in seconds: mostly one of the two bounds, sometimes anything between."""
    return st.sampled_from((lowest, highest, lowest, highest)) | st.integers(lowest, highest)


def written(length: int) -> st.SearchStrategy[str]:
    """`length` seconds as a user might write it: 86400s, 1440m or 24h, 1h30m5s."""
    hours, rest = divmod(length, 3600)
    minutes, secs = divmod(rest, 60)
    parts = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    mixed = parts + (f"{secs}s" if secs or not parts else "")
    return st.sampled_from((f"{length}s", mixed))


def _bounds(draw: st.DrawFn) -> dict[str, float]:
    low, high = sorted(draw(st.lists(st.sampled_from(EDGE_BOUNDS), min_size=2, max_size=2)))
    shape = draw(st.sampled_from(("min", "max", "both")))
    if shape == "min":
        return {"min": low}
    if shape == "max":
        return {"max": high}
    return {"min": low, "max": high}


@st.composite
def _metric(draw: st.DrawFn, name: str, templated: bool) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "name": name,
        "thresholdRange": _bounds(draw),
        "interval": draw(written(draw(seconds(1, DAY)))),
        "onNoData": draw(st.sampled_from(NoDataPolicy)).value,
        "mode": draw(st.sampled_from(MetricMode)).value,
    }
    if templated:
        metric["templateRef"] = {"name": name}
    if draw(st.booleans()):
        metric["noDataTimeout"] = draw(written(draw(seconds(1, DAY))))
    if draw(st.booleans()):
        metric["minRequests"] = draw(st.sampled_from((0, 1, MAX_MIN_REQUESTS)))
    return metric


@st.composite
def _weights(draw: st.DrawFn) -> dict[str, Any]:
    form = draw(st.sampled_from(("every", "one", "few", "step")))
    if form == "every":
        return {"stepWeights": list(range(1, 101))}
    if form == "one":
        return {"stepWeights": [draw(st.sampled_from((1, 100)))]}
    if form == "few":
        chosen = draw(st.sets(st.integers(1, 100), min_size=1, max_size=5))
        return {"stepWeights": sorted(chosen | {draw(st.sampled_from((1, 100)))})}
    step = draw(st.sampled_from((1, 2, 50, 99, 100)))
    return {"stepWeight": step, "maxWeight": draw(st.sampled_from((step, 100)))}


def _chaos(draw: st.DrawFn, weights: tuple[int, ...], interval: int) -> list[dict[str, Any]]:
    experiments = []
    for index in range(draw(st.integers(0, 2))):
        fault: dict[str, Any] = {}
        if draw(st.booleans()):
            fault["abort"] = {
                "httpStatus": draw(st.sampled_from((200, 503, 599))),
                "percentage": draw(st.sampled_from((0.0001, 100))),
            }
        if not fault or draw(st.booleans()):
            delay = draw(st.sampled_from(("1ms", "1h", "250ms")))
            fault["delay"] = {
                "fixedDelay": delay,
                "percentage": draw(st.sampled_from((0.0001, 100))),
            }
        expect = {
            "ejection": draw(st.booleans()),
            "overflow": draw(st.booleans()),
            "successRate": draw(st.sampled_from((0, 100, 99.9))),
        }
        experiment = {
            "name": f"fault-{index}",
            "atWeight": draw(st.sampled_from(weights)),
            "duration": draw(written(draw(seconds(1, interval)))),
            "fault": fault,
            "expect": expect,
            "onFailure": draw(st.sampled_from(("rollback", "continue"))),
        }
        pods = draw(st.sampled_from((None, 1, 1000)))
        if pods is not None:
            experiment["pods"] = pods
        experiments.append(experiment)
    return experiments


@st.composite
def specs(draw: st.DrawFn) -> CanarySpec:
    """A Canary spec with its durations, counts, weights and thresholds at their bounds."""
    interval = draw(seconds(1, DAY))
    analysis: dict[str, Any] = {
        "interval": draw(written(interval)),
        "threshold": draw(st.sampled_from((1, 2, MAX_THRESHOLD))),
        **draw(_weights()),
    }
    if draw(st.booleans()):
        analysis["checkInterval"] = draw(written(draw(seconds(1, interval))))
    names = draw(
        st.lists(
            st.sampled_from((builtins.SUCCESS_RATE, builtins.DURATION, "p99", "ratio")),
            max_size=3,
            unique=True,
        )
    )
    analysis["metrics"] = [draw(_metric(name, name not in builtins.NAMES)) for name in names]
    kinds = draw(st.lists(st.sampled_from(WebhookType), max_size=3))
    analysis["webhooks"] = [
        {
            "name": f"{kind.value}-{index}",
            "type": kind.value,
            "url": f"http://hooks.test/{index}",
            "timeout": draw(st.sampled_from(("100ms", "10m"))),
            "retries": draw(st.sampled_from((0, 10))),
        }
        for index, kind in enumerate(kinds)
    ]
    stable: dict[str, Any] = {"subset": "v1"}
    canary: dict[str, Any] = {"subset": "v2"}
    if draw(st.booleans()):
        stable["labels"] = {"app": "accounts", "version": "v1"}
        canary["labels"] = {"app": "accounts", "version": "v2"}
    if draw(st.booleans()):
        canary["targetRef"] = {"name": "accounts-v2"}
        stable["targetRef"] = {"name": "accounts-v1"}
    spec: dict[str, Any] = {
        "service": {"host": "accounts"},
        "stable": stable,
        "canary": canary,
        "progressDeadline": draw(written(draw(seconds(1, DEADLINE)))),
        "skipAnalysis": draw(st.sampled_from((False,) * 9 + (True,))),
        "onDrift": draw(st.sampled_from(("reassert", "pause"))),
        "analysis": analysis,
    }
    if draw(st.booleans()):
        spec["scaleDownAfter"] = draw(written(draw(seconds(1, WEEK))))
    weights = CanarySpec.model_validate(spec).analysis.weights
    spec["chaos"] = _chaos(draw, weights, interval)
    return CanarySpec.model_validate(spec)


def measurements(threshold: dict[str, float] | None = None) -> st.SearchStrategy[Measurement]:
    """What a provider can answer, extremes first; `threshold` adds its own bounds as values."""
    edges = EDGE_VALUES + tuple((threshold or {}).values())
    value = st.builds(
        lambda number, samples: Measurement.of(number, query="q", samples=samples),
        st.sampled_from(edges) | st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(EDGE_SAMPLES),
    )
    missing = st.sampled_from(
        (Measurement.no_data(query="q"), Measurement.error("x" * 2000, query="q"))
    )
    return st.one_of(value, value, missing)


@st.composite
def readings(draw: st.DrawFn) -> ChaosReading:
    def one() -> Measurement:
        return draw(measurements())

    return ChaosReading(
        requests=one(), errors=one(), ejections=one(), overflow=one(), success_rate=one()
    )


@dataclass(frozen=True, slots=True)
class Frame:
    """One tick of a world at the bounds."""

    # Seconds since the previous tick: from one second to a week.
    gap: int
    measurements: dict[str, Measurement]
    gates: dict[str, GateResult]
    target_ready: bool | None
    readable: bool
    # Extra ticks a written split takes to be served.
    lag: int
    writer: str | None
    chaos: ChaosReading
    # A `canary promote|abort|retry` verb, or a one-off experiment's duration in seconds.
    command: str | None
    request: int | None


@st.composite
def frames(draw: st.DrawFn, spec: CanarySpec, *, clean: bool = False) -> Frame:
    analysis = spec.analysis
    gaps = (1, analysis.check_interval_seconds, analysis.interval_seconds)
    if clean:
        measured = {
            metric.name: Measurement.of(
                _inside(_range(metric).min, _range(metric).max), samples=2**40
            )
            for metric in analysis.metrics
        }
        gates = {hook.name: GateResult(True, "yes") for hook in analysis.webhooks}
        gates.update(
            {
                hook.name: GateResult(False, "no")
                for hook in analysis.webhooks
                if hook.type is WebhookType.ROLLBACK
            }
        )
        # A step's length or a day: a healthy rollout must also end when the metric windows
        # (up to a day) keep the checks off after an experiment.
        gap = int(draw(st.sampled_from((analysis.interval_seconds, DAY))))
        return Frame(gap, measured, gates, True, True, 0, None, draw(readings()), None, None)
    measured = {
        metric.name: draw(measurements(_range(metric).model_dump(exclude_none=True)))
        for metric in analysis.metrics
    }
    gates = {
        hook.name: GateResult(draw(st.booleans()), draw(st.sampled_from(("", "x" * 5000))))
        for hook in analysis.webhooks
        if draw(st.booleans())
    }
    gap = int(draw(st.sampled_from((*gaps, DEADLINE, WEEK)) | seconds(1, WEEK)))
    return Frame(
        gap=gap,
        measurements=measured,
        gates=gates,
        target_ready=draw(st.booleans()),
        readable=draw(st.sampled_from((True, True, True, False))),
        lag=draw(st.integers(0, 2)),
        writer=draw(st.sampled_from((None, None, None, "argocd"))),
        chaos=draw(readings()),
        command=draw(st.sampled_from((None,) * 12 + ("promote", "abort", "retry"))),
        request=draw(st.sampled_from((None,) * 12 + (1, DAY))),
    )


def _inside(low: float | None, high: float | None) -> float:
    if low is not None:
        return low
    assert high is not None
    return high


def starts() -> st.SearchStrategy[datetime]:
    """A realistic `now` for the first tick: anywhere from 2020 to 2100."""
    return st.datetimes(datetime(2020, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))


def _moment() -> st.SearchStrategy[datetime | None]:
    """A time a status may hold: any the model admits (1970..2999, with a zone), or none."""
    return st.none() | st.datetimes(
        datetime(1970, 1, 1), datetime(2999, 12, 31), timezones=st.just(UTC)
    )


@st.composite
def statuses(draw: st.DrawFn, spec: CanarySpec, revisions: tuple[str, ...]) -> dict[str, Any]:
    """A status as someone may have edited it by hand, in wire form: any phase at any step,
    weight and count, any time the model admits in any clock, records of other revisions."""
    at = draw(_moment()) or datetime(2026, 1, 1, tzinfo=UTC)
    subsets = ("", spec.stable.subset, spec.canary.subset, "v9")
    status: dict[str, Any] = {
        "phase": draw(st.none() | st.sampled_from(Phase)),
        "revision": draw(st.sampled_from(revisions)),
        "canaryWeight": draw(st.sampled_from((0, 1, 50, 99, 100))),
        "step": draw(st.sampled_from((0, 1, 99, 10**6))),
        "failedChecks": draw(st.sampled_from((0, 1, MAX_THRESHOLD, 10**12))),
        "stableSubset": draw(st.sampled_from(subsets)),
        "canarySubset": draw(st.sampled_from(subsets)),
        "waitingFor": draw(st.sampled_from(("", "confirm-promotion webhook h"))),
        "promoteRequested": draw(st.sampled_from((None, "checks", "force"))),
        "deadlineAction": draw(st.sampled_from((None, "rollback", "fail"))),
        "retiredTarget": draw(st.sampled_from(("", "accounts-v1"))),
    }
    for name in (
        "lastTransitionTime",
        "stepStartedAt",
        "lastCheckAt",
        "dataWaitFrom",
        "deadlineAt",
        "suspendedAt",
        "scaledDownAt",
    ):
        status[name] = draw(_moment())
    status["checks"] = [
        {
            "name": metric.name,
            "kind": "value",
            "value": 1.0,
            "verdict": draw(st.sampled_from(("pass", "fail", "inconclusive"))),
            "counted": True,
            "revision": draw(st.sampled_from(revisions)),
            "step": draw(st.sampled_from((0, 1, 10**6))),
            "weight": 0,
            "at": at.isoformat(),
        }
        for metric in spec.analysis.metrics
    ]
    status["chaos"] = [
        {
            "name": experiment.name,
            "phase": draw(st.sampled_from(("Running", "Passed", "Failed"))),
            "trial": experiment.trial().to_wire(),
            "subset": spec.canary.subset,
            "fault": "",
            "expect": "",
            "revision": draw(st.sampled_from(revisions)),
            "weight": experiment.at_weight,
            "startedAt": (draw(_moment()) or at).isoformat(),
            "expiresAt": (draw(_moment()) or at).isoformat(),
            "endedAt": None if (ended := draw(_moment())) is None else ended.isoformat(),
        }
        for experiment in spec.chaos
    ]
    return {key: value for key, value in status.items() if value is not None}


def _range(metric: MetricCheck) -> ThresholdRange:
    # The specs drawn here all set a range (none only compares with stable).
    assert metric.threshold_range is not None
    return metric.threshold_range
