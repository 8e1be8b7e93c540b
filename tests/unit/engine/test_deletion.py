"""A deleted Canary in the engine: faults cleared, the route as onDelete says, then Finalize.

A small world drives `wanted` + `decide` once a second (weights apply when the test says, the
router's faults are one slot), first through a rollout to the moment the test deletes the
Canary, then through the deletion's ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, ChaosPhase, Phase
from canary.engine import deletion, revision
from canary.engine.actions import (
    Action,
    ClearFaults,
    Decision,
    Finalize,
    InjectFault,
    Notify,
    SetWeights,
)
from canary.engine.decide import decide
from canary.engine.observation import ActiveFault, Observation, Traffic
from canary.engine.wanted import wanted

from .builders import GOOD, at, make_spec
from .test_chaos import chaos_spec, reading


@dataclass
class World:
    spec: CanarySpec
    status: CanaryStatus = field(default_factory=CanaryStatus)
    weights: dict[str, int] | None = field(default_factory=lambda: {"v1": 100, "v2": 0})
    fault: ActiveFault | None = None
    faults_readable: bool = True
    applied: bool = True
    # Set to False for a router whose weight writes do not land.
    writes_land: bool = True
    problems: tuple[str, ...] = ()
    deleted_at: datetime | None = None
    seconds: float = 0.0
    log: list[Decision] = field(default_factory=list)

    def tick(self) -> Decision:
        now = at(self.seconds)
        asked = wanted(self.spec, self.status, now)
        faults: tuple[ActiveFault, ...] | None = () if self.fault is None else (self.fault,)
        seen = Observation(
            revision=revision.of(self.spec),
            traffic=None
            if self.weights is None
            else Traffic(weights=dict(self.weights), applied=self.applied),
            measurements={metric.name: GOOD[metric.name] for metric in asked.metrics},
            faults=faults if self.faults_readable else None,
            chaos={window.name: reading() for window in asked.chaos},
            deleting_since=self.deleted_at,
            problems=self.problems,
        )
        decision = decide(self.spec, self.status, seen, now)
        for action in decision.actions:
            if isinstance(action, SetWeights) and self.writes_land and self.weights is not None:
                self.weights = {"v1": action.stable_weight, "v2": action.canary_weight}
            elif isinstance(action, InjectFault):
                self.fault = ActiveFault(action.experiment, action.subset, action.expires_at)
            elif isinstance(action, ClearFaults) and self.faults_readable:
                self.fault = None
        self.log.append(decision)
        self.status = decision.status
        self.seconds += 1
        return decision

    def run_until(self, done: Callable[[World], bool], *, limit: int = 300) -> None:
        for _ in range(limit):
            if done(self):
                return
            self.tick()
        raise AssertionError(f"not done after {limit} ticks: {self.status.message}")

    def delete(self) -> None:
        self.deleted_at = at(self.seconds)

    def finalized(self) -> Finalize | None:
        found = [a for d in self.log for a in d.actions if isinstance(a, Finalize)]
        return found[-1] if found else None

    def actions(self, kind: type) -> list[Any]:
        return [a for d in self.log for a in d.actions if isinstance(a, kind)]


def _kinds(decision: Decision) -> list[str]:
    return [type(action).__name__ for action in decision.actions]


def _mid_experiment(**experiment: Any) -> World:
    world = World(chaos_spec(**experiment))
    world.run_until(lambda w: w.fault is not None)
    assert world.status.phase is Phase.PROGRESSING
    assert world.weights == {"v1": 90, "v2": 10}
    return world


def _with_on_delete(spec: CanarySpec, how: str) -> CanarySpec:
    return spec.model_copy(update={"on_delete": how})


def test_deleted_mid_experiment_the_fault_goes_first_and_the_route_goes_back_to_stable() -> None:
    world = _mid_experiment()
    world.delete()
    first = world.tick()
    assert _kinds(first) == ["Notify", "ClearFaults", "SetWeights"], first.actions
    assert first.actions[2] == SetWeights("v1", "v2", 0)
    assert first.wake_after is not None
    # The running experiment is ended as interrupted, and the status says what is awaited.
    [experiment] = first.status.chaos
    assert experiment.phase is ChaosPhase.FAILED
    assert experiment.message == f"interrupted: {deletion.WHY}"
    assert first.status.message.startswith("deleting (onDelete: revert): waiting for")
    assert first.status.deadline_at is None
    assert world.finalized() is None

    second = world.tick()
    assert _kinds(second) == ["Notify", "Finalize"], second.actions
    notice = second.actions[0]
    assert isinstance(notice, Notify)
    assert (notice.reason, notice.warning) == ("Deleted", False)
    assert "100% of the traffic is back on v1" in notice.message
    # Nothing but the deletion ran: no new experiment, no other weight.
    assert world.actions(InjectFault) == [world.actions(InjectFault)[0]]
    assert world.weights == {"v1": 100, "v2": 0}


def test_a_split_not_yet_served_by_the_data_plane_keeps_the_canary() -> None:
    world = _mid_experiment()
    world.delete()
    world.applied = False
    world.tick()
    waiting = world.tick()
    assert world.weights == {"v1": 100, "v2": 0}
    assert "Finalize" not in _kinds(waiting)
    assert "the data plane to serve 100% on v1" in waiting.status.message
    world.applied = True
    assert "Finalize" in _kinds(world.tick())


def test_keep_clears_the_faults_and_leaves_the_weights() -> None:
    world = _mid_experiment()
    world.spec = _with_on_delete(world.spec, "keep")
    world.delete()
    first = world.tick()
    assert _kinds(first) == ["Notify", "ClearFaults"], first.actions
    final = world.tick()
    assert _kinds(final) == ["Notify", "Finalize"], final.actions
    assert world.weights == {"v1": 90, "v2": 10}
    assert world.actions(SetWeights)[-1] == SetWeights("v1", "v2", 10)
    finalize = world.finalized()
    assert finalize is not None
    assert "weights are kept" in finalize.message


def test_faults_that_cannot_be_read_are_cleared_blindly_and_keep_the_canary() -> None:
    world = _mid_experiment()
    world.delete()
    world.faults_readable = False
    for _ in range(3):
        decision = world.tick()
        assert "ClearFaults" in _kinds(decision)
        assert "Finalize" not in _kinds(decision)
    assert "its faults to be read" in world.status.message


@pytest.mark.parametrize(
    ("setup", "outcome"),
    [
        ("never started", "no rollout had moved traffic"),
        ("succeeded", "the rollout had succeeded; v2 serves"),
    ],
)
def test_a_canary_with_no_rollout_under_way_goes_at_once_with_the_route_untouched(
    setup: str, outcome: str
) -> None:
    world = World(make_spec(stepWeights=[50]))
    if setup == "succeeded":
        world.run_until(lambda w: w.status.phase is Phase.SUCCEEDED)
    before = dict(world.weights or {})
    writes = len(world.actions(SetWeights))
    world.delete()
    decision = world.tick()
    assert _kinds(decision) == ["Notify", "Notify", "Finalize"], decision.actions
    assert outcome in decision.status.message
    assert world.weights == before
    assert len(world.actions(SetWeights)) == writes


def test_a_route_that_cannot_be_read_is_left_with_a_warning() -> None:
    world = _mid_experiment()
    world.delete()
    world.weights = None
    world.problems = ("spec.service.virtualService: VirtualService shop/accounts not found",)
    decision = world.tick()
    assert _kinds(decision) == ["Notify", "ClearFaults"], decision.actions
    final = world.tick()
    notice = final.actions[0]
    assert isinstance(notice, Notify)
    assert notice.warning
    assert "VirtualService shop/accounts not found" in notice.message
    assert "Finalize" in _kinds(final)


def test_deletion_never_wedges_past_the_progress_deadline() -> None:
    world = _mid_experiment()
    world.delete()
    world.writes_land = False
    deadline = world.spec.progress_deadline_seconds
    world.run_until(lambda w: w.finalized() is not None, limit=int(deadline) + 5)
    assert world.seconds - 1 >= deadline
    last = world.log[-1]
    # Given up on: nothing more is written, and the warning says what was left.
    assert _kinds(last) == ["Notify", "Finalize"], last.actions
    notice = last.actions[0]
    assert isinstance(notice, Notify)
    assert notice.warning
    assert "the route to send 100% to v1" in notice.message
    assert world.weights == {"v1": 90, "v2": 10}


def test_a_suspended_or_invalid_canary_is_still_reverted() -> None:
    suspended = _mid_experiment()
    suspended.spec = suspended.spec.model_copy(update={"suspend": True})
    suspended.tick()
    assert suspended.status.suspended_at is not None
    suspended.delete()
    suspended.run_until(lambda w: w.finalized() is not None, limit=5)
    assert suspended.weights == {"v1": 100, "v2": 0}
    assert suspended.fault is None

    invalid = _mid_experiment()
    invalid.problems = ("spec.analysis.metrics[0]: MetricTemplate shop/latency not found",)
    invalid.tick()
    assert invalid.status.phase is Phase.INVALID
    invalid.delete()
    invalid.run_until(lambda w: w.finalized() is not None, limit=5)
    assert invalid.weights == {"v1": 100, "v2": 0}
    assert invalid.fault is None


def test_a_deletion_is_noticed_once_and_the_status_is_written_only_when_it_changes() -> None:
    world = _mid_experiment()
    world.delete()
    world.applied = False
    decisions = [world.tick() for _ in range(4)]
    reasons = [a.reason for d in decisions for a in d.actions if isinstance(a, Notify)]
    assert reasons == ["Deleting"]
    assert decisions[3].status is decisions[2].status


def test_unparsed_clears_by_owner_and_finalizes_unless_too_late() -> None:
    status = CanaryStatus()
    now = at(0)
    decision = deletion.unparsed(status, ("spec.analysis: bad",), now=now, deleting_since=now)
    assert [type(a) for a in decision.actions] == [ClearFaults, Notify, Finalize]
    assert "spec.analysis: bad" in decision.status.message
    late = now + deletion.UNPARSED_DEADLINE
    gave_up = deletion.unparsed(status, ("x",), now=late, deleting_since=now)
    assert [type(a) for a in gave_up.actions] == [Notify, Finalize]


def test_an_experiment_removed_from_the_spec_has_its_fault_cleared_first_of_all() -> None:
    """Not deletion: the level-triggered stray rule covers a spec edited mid-experiment."""
    world = _mid_experiment()
    body = world.spec.model_dump(by_alias=True)
    body["chaos"] = []
    world.spec = CanarySpec.model_validate(body)
    decision = world.tick()
    first: Action = decision.actions[0]
    assert isinstance(first, ClearFaults), decision.actions
    assert "eject" in first.why
    assert world.fault is None
    # The new revision starts over without the experiment and never injects it again.
    world.run_until(lambda w: w.status.phase is Phase.SUCCEEDED)
    assert len(world.actions(InjectFault)) == 1


def test_the_deletion_deadline_counts_from_the_deletion_not_from_the_phase() -> None:
    world = _mid_experiment()
    world.seconds += 1000
    world.delete()
    world.writes_land = False
    world.tick()
    assert world.finalized() is None
    world.seconds += world.spec.progress_deadline_seconds - 2
    world.tick()
    assert world.finalized() is None
    world.seconds += 2
    world.tick()
    assert world.finalized() is not None
    assert world.deleted_at is not None
    assert at(world.seconds - 1) - world.deleted_at >= timedelta(
        seconds=world.spec.progress_deadline_seconds
    )
