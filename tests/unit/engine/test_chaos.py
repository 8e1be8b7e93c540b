"""Fault experiments in the engine: when they start, how the fault is kept and cleared, verdicts.

A small world drives `wanted` + `decide` once a second: weights apply at once, the router's
faults are a dict, and the callers' view of a fault window is whatever the test says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from canary.api.chaos import ChaosRequest
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, ChaosPhase, Phase
from canary.engine import revision
from canary.engine.actions import ClearFaults, Decision, InjectFault, Notify, SetWeights
from canary.engine.decide import decide
from canary.engine.observation import ActiveFault, ChaosReading, Measurement, Observation, Traffic
from canary.engine.wanted import ChaosWindow, wanted

from .builders import GOOD, at, make_spec

EXPERIMENT: dict[str, Any] = {
    "name": "eject",
    "atWeight": 10,
    "duration": "10s",
    "fault": {"abort": {"httpStatus": 503, "percentage": 50}},
    "expect": {"ejection": True, "successRate": 90},
}


def chaos_spec(**experiment: Any) -> CanarySpec:
    body = make_spec(interval="30s", checkInterval="5s").model_dump(by_alias=True)
    body["analysis"]["metrics"][0]["interval"] = "20s"
    body["chaos"] = [{**EXPERIMENT, **experiment}]
    return CanarySpec.model_validate(body)


def reading(
    *, requests: float = 50, errors: float = 25, ejections: float = 1, rate: float = 95
) -> ChaosReading:
    return ChaosReading(
        requests=Measurement.of(requests),
        errors=Measurement.of(errors),
        ejections=Measurement.of(ejections),
        overflow=Measurement.of(0),
        success_rate=Measurement.of(rate),
    )


@dataclass
class World:
    spec: CanarySpec
    read: Callable[[ChaosWindow], ChaosReading] = lambda window: reading()
    status: CanaryStatus = field(default_factory=CanaryStatus)
    weights: dict[str, int] = field(default_factory=lambda: {"v1": 100, "v2": 0})
    fault: ActiveFault | None = None
    # Set to False to make the router lose an injected fault (or fail to write one).
    keeps_faults: bool = True
    request: ChaosRequest | None = None
    seconds: float = 0.0
    log: list[tuple[float, Decision, Observation]] = field(default_factory=list)

    def tick(self) -> Decision:
        now = at(self.seconds)
        asked = wanted(self.spec, self.status, now)
        seen = Observation(
            revision=revision.of(self.spec),
            traffic=Traffic(weights=dict(self.weights), applied=True),
            measurements={metric.name: GOOD[metric.name] for metric in asked.metrics},
            faults=() if self.fault is None else (self.fault,),
            chaos={window.name: self.read(window) for window in asked.chaos},
            chaos_request=self.request,
        )
        decision = decide(self.spec, self.status, seen, now)
        for action in decision.actions:
            if isinstance(action, SetWeights):
                self.weights = {"v1": action.stable_weight, "v2": action.canary_weight}
            elif isinstance(action, InjectFault) and self.keeps_faults:
                self.fault = ActiveFault(action.experiment, action.subset, action.expires_at)
            elif isinstance(action, ClearFaults):
                self.fault = None
        self.log.append((self.seconds, decision, seen))
        self.status = decision.status
        self.seconds += 1
        return decision

    def run_until(self, done: Callable[[World], bool], *, limit: int = 300) -> None:
        for _ in range(limit):
            if done(self):
                return
            self.tick()
        raise AssertionError(f"not done after {limit} ticks: {self.status.message}")

    def actions(self, kind: type) -> list[tuple[float, Any]]:
        return [(t, a) for t, d, _ in self.log for a in d.actions if isinstance(a, kind)]


def finished(world: World) -> bool:
    return world.status.phase in (Phase.SUCCEEDED, Phase.FAILED)


def test_a_passing_experiment_runs_at_the_end_of_its_step_then_the_rollout_goes_on() -> None:
    world = World(chaos_spec())
    world.run_until(finished)
    assert world.status.phase is Phase.SUCCEEDED
    [(injected_at, inject)] = world.actions(InjectFault)
    # The step's own 30 s passed with its checks before the fault went in, at weight 10 only.
    step_live = next(t for t, d, _ in world.log if d.status.step_started_at is not None)
    assert injected_at >= step_live + 30
    assert inject.subset == "v2"
    assert inject.fault.abort_status == 503
    assert inject.fault.abort_percent == 50
    assert inject.expires_at == at(injected_at + 10)
    [(cleared_at, _)] = world.actions(ClearFaults)
    assert injected_at + 10 <= cleared_at <= injected_at + 11
    [result] = world.status.chaos
    assert result.phase is ChaosPhase.PASSED
    assert (result.requests, result.ejections, result.success_rate) == (50, 1, 95)
    assert result.weight == 10
    assert "50 requests to v2" in result.message
    reasons = [a.reason for _, a in world.actions(Notify)]
    assert "ChaosStarted" in reasons
    assert "ChaosPassed" in reasons


def test_no_metric_is_judged_from_injection_until_the_fault_left_the_windows() -> None:
    world = World(chaos_spec())
    world.run_until(finished)
    [(injected_at, _)] = world.actions(InjectFault)
    [result] = world.status.chaos
    assert result.ended_at is not None
    quiet_end = (result.ended_at - at(0)).total_seconds() + 20
    measured = [t for t, _, seen in world.log if seen.measurements]
    # The injecting tick measured first: what it judged was the canary before the fault.
    assert not [t for t in measured if injected_at < t < quiet_end]
    # ...and the step moved on only once that quiet time was over.
    advanced = next(t for t, d, _ in world.log if t > injected_at and d.status.canary_weight == 50)
    assert advanced >= quiet_end


def test_the_verdict_reads_exactly_the_fault_window_a_little_after_it_was_cleared() -> None:
    windows: list[tuple[float, ChaosWindow]] = []
    world = World(chaos_spec())
    world.read = lambda window: windows.append((world.seconds, window)) or reading()
    world.run_until(finished)
    [(injected_at, _)] = world.actions(InjectFault)
    [(cleared_at, _)] = world.actions(ClearFaults)
    (asked_at, window), *_ = windows
    assert window.start == at(injected_at)
    assert window.end == at(cleared_at)
    assert asked_at >= cleared_at + 5
    assert window.subset == "v2"


def test_a_failed_experiment_rolls_back_and_says_what_was_missing() -> None:
    world = World(chaos_spec(), read=lambda window: reading(ejections=0, rate=80))
    world.run_until(finished)
    assert world.status.phase is Phase.FAILED
    assert world.weights == {"v1": 100, "v2": 0}
    [result] = world.status.chaos
    assert result.phase is ChaosPhase.FAILED
    assert "no canary host was ejected within 10s" in result.message
    assert "below 90%" in result.message
    rolling = [a for _, a in world.actions(Notify) if a.reason == "RollingBack"]
    assert rolling
    assert rolling[0].message.startswith("chaos experiment eject failed")
    assert world.fault is None


def test_on_failure_continue_reports_and_goes_on() -> None:
    world = World(chaos_spec(onFailure="continue"), read=lambda window: reading(ejections=0))
    world.run_until(finished)
    assert world.status.phase is Phase.SUCCEEDED
    [result] = world.status.chaos
    assert result.phase is ChaosPhase.FAILED
    warned = [a for _, a in world.actions(Notify) if a.reason == "ChaosFailed"]
    assert warned
    assert warned[0].warning


@pytest.mark.parametrize(
    "broken",
    [
        ChaosReading(
            requests=Measurement.no_data(),
            errors=Measurement.no_data(),
            ejections=Measurement.of(1),
            overflow=Measurement.of(0),
            success_rate=Measurement.of(99),
        ),
        ChaosReading(
            requests=Measurement.of(40),
            errors=Measurement.of(20),
            ejections=Measurement.error("Prometheus at x unreachable"),
            overflow=Measurement.of(0),
            success_rate=Measurement.of(99),
        ),
        ChaosReading(
            requests=Measurement.of(40),
            errors=Measurement.of(20),
            ejections=Measurement.of(1),
            overflow=Measurement.of(0),
            success_rate=Measurement(kind=Measurement.of(float("nan")).kind),
        ),
    ],
    ids=["no-traffic", "prometheus-down", "nan-rate"],
)
def test_unknown_data_is_never_a_pass(broken: ChaosReading) -> None:
    world = World(chaos_spec(), read=lambda window: broken)
    world.run_until(finished)
    [result] = world.status.chaos
    assert result.phase is ChaosPhase.FAILED
    assert world.status.phase is Phase.FAILED


def test_a_lost_fault_is_injected_again_until_it_expires() -> None:
    world = World(chaos_spec())
    world.run_until(lambda w: bool(w.actions(InjectFault)))
    world.fault = None  # someone deleted it, or the write failed
    world.tick()
    world.tick()
    injects = world.actions(InjectFault)
    assert len(injects) == 2
    assert injects[0][1].expires_at == injects[1][1].expires_at


def test_a_fault_nobody_accounts_for_is_cleared_first() -> None:
    spec = chaos_spec()
    world = World(spec)
    world.tick()
    world.fault = ActiveFault("left-by-a-crash", "v2", at(-100))
    decision = world.tick()
    assert isinstance(decision.actions[0], ClearFaults)
    assert world.fault is None


def test_a_deadline_passed_during_the_experiment_clears_the_fault_before_the_weights() -> None:
    spec = chaos_spec()
    world = World(spec)
    world.run_until(lambda w: w.fault is not None)
    status = world.status
    forced = status.model_copy(update={"deadline_at": at(world.seconds)})
    world.status = forced
    decision = world.tick()
    kinds = [type(a) for a in decision.actions if not isinstance(a, Notify)]
    assert kinds == [ClearFaults, SetWeights]
    assert decision.status.phase is Phase.ROLLING_BACK
    [result] = decision.status.chaos
    assert result.phase is ChaosPhase.FAILED
    assert result.message.startswith("interrupted: rolled back")


def test_a_restarted_controller_carries_on_with_the_experiment_from_its_status() -> None:
    world = World(chaos_spec())
    world.run_until(lambda w: w.fault is not None)
    world.tick()
    world.status = CanaryStatus.model_validate_json(world.status.model_dump_json(by_alias=True))
    world.run_until(finished)
    assert world.status.phase is Phase.SUCCEEDED
    assert len(world.actions(InjectFault)) == 1


def test_a_suspension_ends_the_fault_and_the_experiment_runs_again_in_full() -> None:
    spec = chaos_spec()
    world = World(spec)
    world.run_until(lambda w: w.fault is not None)
    suspended = CanarySpec.model_validate(spec.model_dump(by_alias=True) | {"suspend": True})
    world.spec = suspended
    world.tick()
    world.tick()
    assert world.fault is None
    assert world.status.chaos == ()
    world.spec = spec
    world.run_until(finished)
    assert world.status.phase is Phase.SUCCEEDED
    assert len(world.actions(InjectFault)) == 2
    [result] = world.status.chaos
    assert result.phase is ChaosPhase.PASSED


def test_a_spec_change_mid_experiment_clears_the_fault_and_starts_over() -> None:
    world = World(chaos_spec())
    world.run_until(lambda w: w.fault is not None)
    world.spec = chaos_spec(duration="12s")
    decision = world.tick()
    assert isinstance(decision.actions[0], ClearFaults)
    assert decision.status.chaos == ()
    assert decision.status.step == 0


def test_experiments_run_only_at_their_step_and_once_per_revision() -> None:
    body = chaos_spec().model_dump(by_alias=True)
    body["chaos"].append({**EXPERIMENT, "name": "later", "atWeight": 50})
    world = World(CanarySpec.model_validate(body))
    world.run_until(finished)
    assert [(r.name, r.weight) for r in world.status.chaos] == [("eject", 10), ("later", 50)]
    assert len(world.actions(InjectFault)) == 2


def _request(world: World, **fields: Any) -> ChaosRequest:
    return ChaosRequest.model_validate(
        {
            "name": "oneoff",
            "revision": world.status.revision,
            "duration": "5s",
            "fault": {"abort": {"httpStatus": 500, "percentage": 100}},
            **fields,
        }
    )


def test_a_one_off_request_runs_at_once_in_a_live_step_and_reports_without_rolling_back() -> None:
    world = World(make_spec(interval="30s", checkInterval="5s"))
    world.run_until(lambda w: w.status.step_started_at is not None)
    world.read = lambda window: reading(ejections=0)
    world.request = _request(world)
    decision = world.tick()
    [inject] = [a for a in decision.actions if isinstance(a, InjectFault)]
    assert inject.experiment == "oneoff"
    assert inject.fault.abort_status == 500
    world.run_until(lambda w: w.status.chaos[0].phase is not ChaosPhase.RUNNING, limit=30)
    [result] = world.status.chaos
    assert result.phase is ChaosPhase.FAILED
    assert result.trial.on_failure == "continue"
    world.run_until(finished)
    assert world.status.phase is Phase.SUCCEEDED
    assert len(world.actions(InjectFault)) == 1, "a request runs once"


def test_a_request_for_another_rollout_is_ignored() -> None:
    world = World(make_spec(interval="30s", checkInterval="5s"))
    world.run_until(lambda w: w.status.step_started_at is not None)
    world.request = _request(world, revision="someone-elses")
    world.run_until(finished)
    assert world.actions(InjectFault) == []
    assert world.status.chaos == ()


def test_a_request_set_to_roll_back_does_so_when_it_fails() -> None:
    world = World(make_spec(interval="30s", checkInterval="5s"))
    world.run_until(lambda w: w.status.step_started_at is not None)
    world.read = lambda window: reading(ejections=0)
    world.request = _request(world, onFailure="rollback")
    world.run_until(finished)
    assert world.status.phase is Phase.FAILED
    assert world.weights == {"v1": 100, "v2": 0}
