"""Reusable Hypothesis strategies: valid Canary specs and the observation streams they meet.

A spec is drawn from the space the validators accept: either form of the weights, an interval
of 10s..2m with a check interval no longer than it, built-in and template metrics with every
no-data policy and mode, and webhooks of the four types. A stream is what the world answers,
tick after tick: for each metric a value in or out of range, too few requests, no data, NaN or a
query error; a target readiness that may flip; gate answers; a route that is sometimes
unreadable; how many ticks the data plane takes to apply a written split; and the ticks at which
the target's pod template changes (a new revision). Frames repeat, so a run of any length has
an input, and everything drawn shrinks to a readable counterexample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from canary.api import builtins
from canary.api.metrics import MetricCheck, MetricMode, NoDataPolicy, ThresholdRange
from canary.api.spec import CanarySpec, WebhookType
from canary.engine.observation import GateResult, Measurement

TEMPLATE_METRICS = ("error-budget", "latency-p95", "queue-depth")
METRIC_NAMES = (builtins.SUCCESS_RATE, builtins.DURATION, *TEMPLATE_METRICS)
# The most ticks a written split takes to reach the data plane after the tick that wrote it.
MAX_LAG = 2
TICK_SECONDS = (5, 10, 15, 20, 30)

# What a provider can answer. A value "in range" passes unless minRequests asks for more samples
# than it came with; "few requests" is an in-range value from too few (or an unknown number of)
# requests, which passes only for a metric without minRequests.
IN_RANGE = "in range"
OUT_OF_RANGE = "out of range"
FEW_REQUESTS = "few requests"
NO_DATA = "no data"
NAN = "nan"
ERROR = "error"
EVERY_ANSWER = (IN_RANGE, IN_RANGE, OUT_OF_RANGE, FEW_REQUESTS, NO_DATA, NAN, ERROR)
NO_VALUE = (NO_DATA, NAN, ERROR)
FAILING = (OUT_OF_RANGE, NO_DATA, NAN, ERROR)


def duration(seconds: int) -> str:
    """`seconds` as a user writes it: 45s, 2m, 1m30s."""
    minutes, rest = divmod(seconds, 60)
    return (f"{minutes}m" if minutes else "") + (f"{rest}s" if rest or not minutes else "")


def _bounds(lowest: float, highest: float) -> st.SearchStrategy[float]:
    return st.floats(lowest, highest, allow_nan=False, allow_infinity=False).map(
        lambda number: round(number, 2)
    )


@st.composite
def threshold_ranges(draw: st.DrawFn, name: str) -> dict[str, float]:
    if name == builtins.SUCCESS_RATE:
        return {"min": draw(_bounds(90, 99.9))}
    if name == builtins.DURATION:
        return {"max": draw(_bounds(50, 1000))}
    shape = draw(st.sampled_from(("min", "max", "both")))
    low = draw(_bounds(-100, 100))
    if shape == "min":
        return {"min": low}
    if shape == "max":
        return {"max": low}
    return {"min": low, "max": low + draw(_bounds(0, 100))}


@st.composite
def metric_checks(draw: st.DrawFn, name: str, *, mode: MetricMode | None = None) -> dict[str, Any]:
    """A metric check in wire form: a built-in by name, any other name with a templateRef."""
    metric: dict[str, Any] = {
        "name": name,
        "thresholdRange": draw(threshold_ranges(name)),
        "interval": draw(st.sampled_from(("30s", "1m", "5m"))),
        "onNoData": draw(st.sampled_from(NoDataPolicy)).value,
        "mode": (mode or draw(st.sampled_from(MetricMode))).value,
    }
    if name not in builtins.NAMES:
        metric["templateRef"] = {"name": name}
        if draw(st.booleans()):
            metric["templateRef"]["namespace"] = "monitoring"
    if draw(st.booleans()):
        metric["noDataTimeout"] = duration(draw(st.integers(5, 300)))
    if draw(st.booleans()):
        metric["minRequests"] = draw(st.integers(0, 500))
    return metric


@st.composite
def weights(draw: st.DrawFn) -> dict[str, Any]:
    """stepWeights strictly increasing within 1..100, or stepWeight with maxWeight (<= 10 steps)."""
    # sampled_from draws near-uniformly where integers() favours its lower end: a fair mix of
    # short and long rollouts.
    if draw(st.booleans()):
        count = draw(st.sampled_from(range(1, 7)))
        chosen = draw(st.lists(st.integers(1, 100), min_size=count, max_size=count, unique=True))
        return {"stepWeights": sorted(chosen)}
    step = draw(st.sampled_from((10, 12, 15, 20, 25, 33, 50, 100)))
    return {"stepWeight": step, "maxWeight": draw(st.sampled_from(range(step, 101)))}


@st.composite
def canary_specs(
    draw: st.DrawFn,
    *,
    min_enforced: int = 0,
    min_observed: int = 0,
    skip_analysis: bool | None = False,
) -> CanarySpec:
    """A valid CanarySpec with 0-3 metrics (at least the enforced and observed counts asked for).

    `skip_analysis=None` draws it too, rarely; most properties are about analysed rollouts.
    """
    interval = draw(st.integers(10, 120))
    analysis: dict[str, Any] = {
        "interval": duration(interval),
        "threshold": draw(st.integers(1, 5)),
        **draw(weights()),
    }
    if draw(st.booleans()):
        analysis["checkInterval"] = duration(draw(st.integers(5, interval)))
    fixed = min_enforced + min_observed
    count = draw(st.sampled_from(range(fixed, 4)))
    names = draw(st.permutations(METRIC_NAMES))[:count]
    modes = [MetricMode.ENFORCE] * min_enforced + [MetricMode.OBSERVE] * min_observed
    analysis["metrics"] = [
        draw(metric_checks(name, mode=modes[index] if index < fixed else None))
        for index, name in enumerate(names)
    ]
    types = draw(st.lists(st.sampled_from(WebhookType), max_size=4))
    analysis["webhooks"] = [
        {"name": f"{kind.value}-{index}", "type": kind.value, "url": f"http://hooks.test/{index}"}
        for index, kind in enumerate(types)
    ]
    canary: dict[str, Any] = {"subset": "v2"}
    if draw(st.booleans()):
        canary["targetRef"] = {"name": "accounts-v2"}
    rarely = st.sampled_from((False,) * 9 + (True,))
    skip = draw(rarely) if skip_analysis is None else skip_analysis
    return CanarySpec.model_validate(
        {
            "service": {"host": "accounts"},
            "stable": {"subset": "v1"},
            "canary": canary,
            "progressDeadline": duration(draw(st.integers(30, 300))),
            "skipAnalysis": skip,
            "analysis": analysis,
        }
    )


def _inside(limits: ThresholdRange) -> st.SearchStrategy[float]:
    if limits.min is not None and limits.max is not None:
        return st.floats(limits.min, limits.max)
    if limits.min is not None:
        return st.floats(limits.min, limits.min + 100)
    assert limits.max is not None
    return st.floats(limits.max - 100, limits.max)


def _outside(limits: ThresholdRange) -> st.SearchStrategy[float]:
    sides = []
    if limits.min is not None:
        sides.append(st.floats(limits.min - 100, limits.min, exclude_max=True))
    if limits.max is not None:
        sides.append(st.floats(limits.max, limits.max + 100, exclude_min=True))
    return st.one_of(sides)


@st.composite
def measurements(
    draw: st.DrawFn, metric: MetricCheck, *, answers: Iterable[str] = EVERY_ANSWER
) -> Measurement:
    """What the provider answers for `metric`, as one of `answers`."""
    answer = draw(st.sampled_from(tuple(answers)))
    query = f"query({metric.name})"
    if answer == NO_DATA:
        return Measurement.no_data(query=query)
    if answer == NAN:
        return Measurement.of(math.nan, query=query, samples=draw(st.integers(0, 10)))
    if answer == ERROR:
        message = draw(st.sampled_from(("timeout", "connection refused", "bad_data: parse error")))
        return Measurement.error(message, query=query)
    enough = metric.min_requests or 0
    # The specs drawn here all set a range (none only compares with stable).
    assert metric.threshold_range is not None
    if answer == FEW_REQUESTS:
        samples = draw(st.none() | st.integers(0, enough - 1)) if enough else None
        return Measurement.of(draw(_inside(metric.threshold_range)), query=query, samples=samples)
    samples = draw(st.integers(enough, enough + 5000))
    values = _inside if answer == IN_RANGE else _outside
    return Measurement.of(draw(values(metric.threshold_range)), query=query, samples=samples)


@dataclass(frozen=True, slots=True)
class Frame:
    """What the world answers at one tick."""

    # An answer for every metric of the spec; the driver passes on only those `wanted` asks for.
    measurements: Mapping[str, Measurement]
    # Gate webhooks that answered; a missing name timed out or was unreachable.
    gates: Mapping[str, GateResult]
    # None when the spec has no targetRef.
    target_ready: bool | None
    route_readable: bool
    # Extra ticks a split written at this tick takes to be applied (0: seen applied next tick).
    lag: int


@dataclass(frozen=True, slots=True)
class Stream:
    frames: tuple[Frame, ...]
    tick_seconds: int
    # The canary's weight in the live route before the controller first looks.
    initial_canary_weight: int = 0
    # Ticks at which the target's pod template changes, making a new revision.
    builds: tuple[int, ...] = ()

    def frame(self, tick: int) -> Frame:
        return self.frames[tick % len(self.frames)]

    def build(self, tick: int) -> int:
        return sum(1 for at in self.builds if at <= tick)

    @property
    def always_readable(self) -> bool:
        return all(frame.route_readable for frame in self.frames)


@st.composite
def frames(
    draw: st.DrawFn,
    spec: CanarySpec,
    *,
    clean: bool = False,
    gates_pass: bool | None = None,
    answers: Mapping[str, Iterable[str]] | None = None,
    readable: bool | None = None,
) -> Frame:
    """One tick of the world; `answers` narrows what chosen metrics may answer.

    A clean frame has every other metric in range, the target ready, the route readable and,
    unless `gates_pass` says otherwise, every gate passing; only the data plane's lag varies.
    """
    narrowed = answers or {}
    usual = (IN_RANGE,) if clean else EVERY_ANSWER
    measured = {
        metric.name: draw(measurements(metric, answers=narrowed.get(metric.name, usual)))
        for metric in spec.analysis.metrics
    }
    gates = {}
    for hook in spec.analysis.webhooks:
        if hook.type is WebhookType.POST_ROLLOUT:
            continue
        passing = clean if gates_pass is None else gates_pass
        answer = "pass" if passing else draw(st.sampled_from(("pass", "refuse", "silent")))
        if answer != "silent":
            gates[hook.name] = GateResult(passed=answer == "pass", message=f"{hook.name} {answer}")
    ready = None if spec.canary.target_ref is None else clean or draw(st.booleans())
    if readable is None:
        readable = clean or draw(st.sampled_from((True, True, True, False)))
    return Frame(
        measurements=measured,
        gates=gates,
        target_ready=ready,
        route_readable=readable,
        lag=draw(st.integers(0, MAX_LAG)),
    )


# What a stream's frames are like, as (clean, gates pass) choices: all clean, three clean in
# four, none clean, or clean but for gates that refuse or do not answer at times.
HEALTH = {
    "clean": ((True, True),),
    "mixed": ((True, True), (True, True), (True, True), (False, False)),
    "noisy": ((False, False),),
    "gated": ((True, False),),
}


@st.composite
def streams(
    draw: st.DrawFn,
    spec: CanarySpec,
    *,
    answers: Mapping[str, Iterable[str]] | None = None,
    readable: bool | None = None,
    builds: bool = True,
    max_frames: int = 12,
) -> Stream:
    """An observation stream for `spec`: 1..max_frames frames, repeated for as long as needed."""
    health = HEALTH[draw(st.sampled_from(sorted(HEALTH)), label="health")]
    frame = st.sampled_from(health).flatmap(
        lambda kind: frames(
            spec, clean=kind[0], gates_pass=kind[1], answers=answers, readable=readable
        )
    )
    drawn = draw(st.lists(frame, min_size=1, max_size=max_frames))
    changes = draw(st.sets(st.integers(1, 60), max_size=2)) if builds else set()
    return Stream(
        frames=tuple(drawn),
        tick_seconds=draw(st.sampled_from(TICK_SECONDS)),
        initial_canary_weight=draw(st.just(0) | st.integers(0, 99)),
        builds=tuple(sorted(changes)),
    )


@st.composite
def failing(draw: st.DrawFn, spec: CanarySpec, stream: Stream, names: Iterable[str]) -> Stream:
    """`stream` with every answer for the metrics `names` replaced by a failing one."""
    replaced = set(names)
    chosen = [metric for metric in spec.analysis.metrics if metric.name in replaced]
    changed = []
    for frame in stream.frames:
        measured = dict(frame.measurements)
        for metric in chosen:
            measured[metric.name] = draw(measurements(metric, answers=FAILING))
        changed.append(replace(frame, measurements=measured))
    return replace(stream, frames=tuple(changed))


@st.composite
def rollouts(draw: st.DrawFn, *, skip_analysis: bool | None = False) -> tuple[CanarySpec, Stream]:
    """A spec and a stream for it."""
    spec = draw(canary_specs(skip_analysis=skip_analysis))
    return spec, draw(streams(spec))
