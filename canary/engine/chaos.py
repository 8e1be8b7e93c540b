"""Fault experiments inside a step: start, hold, clear, judge, and clean up after anyone.

An experiment runs at the step whose weight it names, once that step's checks have passed and
before it advances: the fault is injected with an expiry, held for its duration, cleared, and
judged from what the callers saw in exactly that window. The step's metric checks stay off from
the injection until the fault has left the longest metric window, because the fault makes the
canary fail on purpose, and that must not count as the canary's own failure.

Faults are level-triggered like the weights: a fault the status does not account for (left by a
crashed controller, an interrupted experiment, a rollback) is cleared on the next tick, and a
running experiment whose fault is missing gets it again until it expires.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from canary.api.chaos import ChaosRequest, Experiment, Trial
from canary.api.status import CanaryStatus, ChaosPhase, ChaosResult, MeasurementKind
from canary.engine import judge, records
from canary.engine.actions import ClearFaults, Decision, Fault, InjectFault, Notify
from canary.engine.observation import ChaosReading, Measurement
from canary.engine.plan import Plan
from canary.engine.tick import Tick, waiting

# How long after the fault is cleared the verdict's queries run: the window's last scrape (the
# demo scrapes every second, a cluster typically every 15 s) must have reached Prometheus, and
# each query reads its window as it was at the fault's expiry (PromQL's `@`), so waiting longer
# changes nothing but the wait.
SETTLE = 5.0
# How often a running experiment looks at its fault: a missing one is injected again this soon.
FAULT_POLL = 2.0
_FOREVER = datetime.max.replace(tzinfo=UTC)


def running(results: tuple[ChaosResult, ...], revision: str) -> ChaosResult | None:
    for result in reversed(results):
        if result.phase is ChaosPhase.RUNNING and result.revision == revision:
            return result
    return None


def pending(tick: Tick) -> Experiment | None:
    """The next experiment of this step that has not run for this revision, if any."""
    status = tick.status
    weight, revision = status.canary_weight, status.revision
    done = {result.name for result in status.chaos if result.revision == revision}
    for experiment in tick.plan.chaos:
        if experiment.at_weight == weight and experiment.name not in done:
            return experiment
    return None


def quiet_until(plan: Plan, status: CanaryStatus) -> datetime | None:
    """Until when the step's checks stay off because a fault of this step is in their windows."""
    latest: datetime | None = None
    for result in status.chaos:
        if result.revision != status.revision or result.weight != status.canary_weight:
            continue
        if result.ended_at is None:
            return _FOREVER
        if latest is None or result.ended_at > latest:
            latest = result.ended_at
    return None if latest is None else latest + timedelta(seconds=plan.longest_window)


def requested(tick: Tick) -> ChaosRequest | None:
    """A one-off experiment asked for this rollout that has not run yet, if any."""
    request = tick.seen.chaos_request
    status = tick.status
    if request is None or request.revision != status.revision:
        return None
    if any(result.name == request.name for result in status.chaos):
        return None
    return request


def fault_of(experiment: Trial) -> Fault:
    abort, delay = experiment.fault.abort, experiment.fault.delay
    return Fault(
        abort_status=None if abort is None else abort.http_status,
        abort_percent=0.0 if abort is None else abort.percentage,
        delay_seconds=None if delay is None else delay.seconds,
        delay_percent=0.0 if delay is None else delay.percentage,
    )


def start(tick: Tick, experiment: Trial, judged: dict[str, Any] | None) -> Decision:
    """Record the experiment as running (the status is written before the fault), then inject."""
    status, now = tick.status, tick.now
    expires_at = tick.now + timedelta(seconds=experiment.duration_seconds)
    subset = status.canary_subset
    fault = fault_of(experiment)
    result = ChaosResult(
        name=experiment.name,
        phase=ChaosPhase.RUNNING,
        trial=experiment.trial(),
        subset=subset,
        fault=_described(fault, experiment.pods),
        expect=experiment.expect.describe(),
        revision=status.revision,
        weight=status.canary_weight,
        started_at=now,
        expires_at=expires_at,
    )
    message = (
        f"chaos {experiment.name}: {_described(fault, experiment.pods)} on {subset} for "
        f"{experiment.duration}; "
        f"expecting {experiment.expect.describe()}"
    )
    updates: dict[str, Any] = dict(judged or {})
    updates.update(chaos=(*status.chaos, result), message=message)
    return Decision(
        status=records.evolve(status, updates),
        actions=(
            Notify("ChaosStarted", message),
            InjectFault(experiment.name, subset, fault, expires_at, experiment.pods),
        ),
        wake_after=min(FAULT_POLL, experiment.duration_seconds),
    )


def hold(tick: Tick, result: ChaosResult) -> Decision:
    """A running experiment: keep its fault in place, clear it at expiry, then judge it."""
    now, seen = tick.now, tick.seen
    experiment = result.trial
    if result.ended_at is None:
        if now < result.expires_at:
            left = (result.expires_at - now).total_seconds()
            message = f"chaos {result.name}: {result.fault} on {result.subset}, {left:.0f}s left"
            faults = seen.faults
            if faults is not None and not any(f.experiment == result.name for f in faults):
                inject = InjectFault(
                    result.name,
                    result.subset,
                    fault_of(experiment),
                    result.expires_at,
                    experiment.pods,
                )
                return waiting(tick, message, inject, poll=True)
            decision = waiting(tick, message)
            return Decision(decision.status, wake_after=min(FAULT_POLL, left))
        ended = records.evolve(
            tick.status,
            {
                "chaos": _replaced(tick, result, ended_at=now),
                "message": f"chaos {result.name}: fault cleared; judging in {SETTLE:g}s",
            },
        )
        return Decision(ended, (ClearFaults(f"experiment {result.name} ended"),), wake_after=SETTLE)
    if seen.faults:
        return waiting(
            tick,
            f"chaos {result.name}: clearing the fault",
            ClearFaults(f"experiment {result.name} ended"),
            poll=True,
        )
    reading = seen.chaos.get(result.name)
    if reading is None:
        return waiting(tick, f"chaos {result.name}: waiting for the fault window's metrics")
    return _judged(tick, result, experiment, reading)


def _judged(tick: Tick, result: ChaosResult, experiment: Trial, reading: ChaosReading) -> Decision:
    expect = experiment.expect
    problems: list[str] = []
    requests = _number(reading.requests)
    if requests is None or requests < 1:
        problems.append(
            "no request reached the canary during the fault, so nothing was proven"
            + _why(reading.requests)
        )
    ejections = _number(reading.ejections)
    if expect.ejection and (ejections is None or ejections < 1):
        why = _why(reading.ejections)
        if reading.ejections.kind is MeasurementKind.NO_DATA:
            # Envoy keeps outlier-detection stats only for a cluster that has outlier detection.
            why = " (the callers have no outlier-detection stats for it: is outlierDetection set?)"
        problems.append(f"no canary host was ejected within {experiment.duration}{why}")
    rate = _number(reading.success_rate)
    if expect.success_rate is not None and (rate is None or rate < expect.success_rate):
        seen = "unknown" if rate is None else f"{rate:.2f}%"
        problems.append(
            f"the callers' success rate was {seen}, below {expect.success_rate:g}%"
            + _why(reading.success_rate)
        )
    overflow = _number(reading.overflow)
    if expect.overflow and (overflow is None or overflow < 1):
        problems.append(
            "the circuit breaker shed no load (no pending overflow)" + _why(reading.overflow)
        )
    observed = (
        f"{_count(requests)} requests to {result.subset} ({_count(_number(reading.errors))} "
        f"5xx), {_count(ejections)} ejections, {_count(overflow)} overflowed, callers' success "
        f"rate {'unknown' if rate is None else f'{rate:.2f}%'}"
    )
    passed = not problems
    message = observed if passed else f"{'; '.join(problems)} ({observed})"
    phase = ChaosPhase.PASSED if passed else ChaosPhase.FAILED
    return _ended(
        tick,
        result,
        phase,
        message,
        requests=requests,
        errors=_number(reading.errors),
        ejections=ejections,
        overflow=overflow,
        success_rate=rate,
    )


def _ended(
    tick: Tick, result: ChaosResult, phase: ChaosPhase, message: str, **observed: Any
) -> Decision:
    now = tick.now
    chaos = _replaced(
        tick,
        result,
        phase=phase,
        message=message,
        judged_at=now,
        ended_at=result.ended_at or now,
        **observed,
    )
    text = f"chaos {result.name} {phase.value.lower()}: {message}"
    status = records.evolve(tick.status, {"chaos": chaos, "message": text})
    reason = "ChaosPassed" if phase is ChaosPhase.PASSED else "ChaosFailed"
    return Decision(status, (Notify(reason, text, warning=phase is not ChaosPhase.PASSED),))


def interrupted(tick: Tick, why: str) -> dict[str, Any]:
    """Status updates that end a running experiment early (a rollback, a suspension)."""
    status = tick.status
    result = running(status.chaos, status.revision)
    if result is None:
        return {}
    return {
        "chaos": _replaced(
            tick,
            result,
            phase=ChaosPhase.FAILED,
            message=f"interrupted: {why}",
            ended_at=result.ended_at or tick.now,
            judged_at=tick.now,
        )
    }


def clear_strays(tick: Tick, decision: Decision) -> Decision:
    """Clear, first of all, every fault that no running experiment of `decision` accounts for."""
    faults = tick.seen.faults
    if not faults:
        return decision
    status = decision.status
    keep = running(status.chaos, status.revision)
    allowed = (
        keep.name
        if keep is not None and keep.ended_at is None and tick.now < keep.expires_at
        else None
    )
    strays = [fault for fault in faults if fault.experiment != allowed]
    if not strays or any(isinstance(action, ClearFaults) for action in decision.actions):
        return decision
    names = ", ".join(sorted({fault.experiment for fault in strays}))
    clear = ClearFaults(f"fault(s) of {names} not accounted for by a running experiment")
    return Decision(decision.status, (clear, *decision.actions), decision.wake_after)


def _replaced(tick: Tick, result: ChaosResult, **updates: Any) -> tuple[ChaosResult, ...]:
    changed = result.model_copy(update=updates)
    return tuple(changed if entry is result else entry for entry in tick.status.chaos)


def _described(fault: Fault, pods: int | None) -> str:
    if pods is None:
        return fault.describe()
    return f"{fault.describe()} of {pods} pod{'s' if pods > 1 else ''}"


def _number(measurement: Measurement) -> float | None:
    # +Inf or -Inf proves nothing (a division by zero in a query), and JSON, so the status,
    # cannot hold one: it is unknown, like no data, and never meets an expectation.
    value = measurement.value
    if measurement.kind is MeasurementKind.VALUE and value is not None and math.isfinite(value):
        return value
    return None


def _why(measurement: Measurement) -> str:
    if measurement.kind is MeasurementKind.VALUE:
        value = measurement.value
        return "" if value is None or math.isfinite(value) else f" [{judge.shown(value)}]"
    return f" [{measurement.kind.value}: {measurement.message}]"


def _count(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"
