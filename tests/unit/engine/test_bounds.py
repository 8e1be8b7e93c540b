"""`decide` never raises for any Canary the model admits, driven at the model's bounds.

Specs come from tests/bounded.py: every duration, count, weight and threshold at its extremes
(a day-long step, a 72h progress deadline, a week's scaleDownAfter, 100 steps of 1%, threshold
10000, thresholds of +-1.8e308). The world answers with the extremes a provider can send (+Inf,
-Inf, NaN, the largest floats, 2^63 requests, 5000-character messages), its clock starts anywhere
from 2020 to 2100 and may jump a week between two ticks, and people send commands and one-off
experiments. Every tick, `wanted` and `decide` return; the status they write is strict JSON (no
infinity, which the API server refuses) that reads back as it was; weights stay within 0..100.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canary.api.chaos import ChaosRequest
from canary.api.commands import Command
from canary.api.spec import CanarySpec
from canary.api.status import TERMINAL_PHASES, CanaryStatus, Phase
from canary.engine import revision
from canary.engine.actions import ClearFaults, Decision, InjectFault, SetWeights
from canary.engine.decide import decide
from canary.engine.observation import ActiveFault, Observation, Traffic
from canary.engine.wanted import wanted
from tests import bounded

BOUNDS = settings(
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Whole rollouts: 100 steps of 1% take some 300 ticks when all goes well.
MAX_TICKS = 600


@dataclass
class World:
    """A controller's loop at the bounds: the route, the faults in place, the clock."""

    spec: CanarySpec
    frames: tuple[bounded.Frame, ...]
    now: datetime
    status: CanaryStatus = field(default_factory=CanaryStatus)
    weights: dict[str, int] = field(default_factory=dict)
    applied_from: int = 0
    faults: tuple[ActiveFault, ...] = ()
    tick: int = 0

    def step(self) -> Decision:
        frame = self.frames[self.tick % len(self.frames)]
        self.now += timedelta(seconds=frame.gap)
        spec, status, now = self.spec, self.status, self.now
        asked = wanted(spec, status, now)
        rollout = revision.of(spec)
        seen = Observation(
            revision=rollout,
            traffic=Traffic(dict(self.weights), self.tick >= self.applied_from, frame.writer)
            if frame.readable
            else None,
            target_ready=frame.target_ready if spec.canary.target_ref else None,
            measurements={m.name: frame.measurements[m.name] for m in asked.metrics},
            gates={h.name: frame.gates[h.name] for h in asked.webhooks if h.name in frame.gates},
            faults=self.faults,
            chaos={window.name: frame.chaos for window in asked.chaos},
            chaos_request=_request(frame.request, rollout),
            command=_command(frame.command, self.tick),
        )
        decision = decide(spec, status, seen, now)
        self._act(decision, frame.lag)
        self.status = decision.status
        self.tick += 1
        return decision

    def _act(self, decision: Decision, lag: int) -> None:
        for action in decision.actions:
            if isinstance(action, SetWeights):
                assert 0 <= action.canary_weight <= 100
                assert action.stable_weight + action.canary_weight == 100
                updated = {action.stable_subset: action.stable_weight}
                updated[action.canary_subset] = action.canary_weight
                if updated != self.weights:
                    self.weights = updated
                    self.applied_from = self.tick + 1 + lag
            elif isinstance(action, InjectFault):
                assert action.expires_at > self.now
                fault = ActiveFault(action.experiment, action.subset, action.expires_at)
                self.faults = (*[f for f in self.faults if f.experiment != fault.experiment], fault)
            elif isinstance(action, ClearFaults):
                self.faults = ()

    def run(self, *, max_ticks: int, reads_back: bool = True) -> None:
        for _ in range(max_ticks):
            self.step()
            wire = json.dumps(self.status.to_wire(), allow_nan=False)
            if reads_back:
                assert CanaryStatus.model_validate(json.loads(wire)) == self.status
            assert 0 <= self.status.canary_weight <= 100
            if self.status.phase in TERMINAL_PHASES:
                return


def _command(verb: str | None, tick: int) -> Command | None:
    if verb is None:
        return None
    return Command.model_validate({"verb": verb, "id": f"c-{tick}", "force": tick % 2 == 0})


def _request(length: int | None, rollout: str) -> ChaosRequest | None:
    if length is None:
        return None
    request = {
        "name": "one-off",
        "revision": rollout,
        "duration": f"{length}s",
        "pods": 1000,
        "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
    }
    return ChaosRequest.model_validate(request)


def _world(spec: CanarySpec, frames: list[bounded.Frame], now: datetime, canary: int) -> World:
    weights = {spec.stable.subset: 100 - canary, spec.canary.subset: canary}
    return World(spec, tuple(frames), now, weights=weights)


@st.composite
def worlds(draw: st.DrawFn, *, clean: bool = False) -> World:
    spec = draw(bounded.specs())
    frames = draw(st.lists(bounded.frames(spec, clean=clean), min_size=1, max_size=8))
    if clean:
        # At least one tick a day: what waits on a day-long window gets past it.
        frames.append(replace(frames[-1], gap=bounded.DAY))
    canary = 0 if clean else draw(st.sampled_from((0, 0, 1, 50, 100)))
    return _world(spec, frames, draw(bounded.starts()), canary)


@BOUNDS
@given(worlds())
def test_decide_never_raises_at_the_bounds(world: World) -> None:
    """Any spec the model admits, any answer a provider can send, any clock from 2020 to 2100
    with gaps of up to a week: every tick returns a decision whose status is strict JSON."""
    world.run(max_ticks=MAX_TICKS)


@BOUNDS
@given(worlds(clean=True))
def test_a_healthy_rollout_at_the_bounds_ends(world: World) -> None:
    """A world that answers every check at its bound (a value equal to min or max passes) and
    ticks once a step or once a day: the rollout ends, Succeeded, or Failed where a deadline of
    a second or an experiment's expectations could not be met; none is stuck."""
    world.run(max_ticks=MAX_TICKS)
    assert world.status.phase in TERMINAL_PHASES, (world.status.phase, world.tick)


def test_the_longest_durations_from_a_late_now_do_not_overflow() -> None:
    """The reported crash: a step, a deadline and a retention at their longest bounds, from a
    `now` in 2100, through a whole rollout that holds each step its full day."""
    spec = CanarySpec.model_validate(
        {
            "service": {"host": "accounts"},
            "stable": {"subset": "v1", "targetRef": {"name": "accounts-v1"}},
            "canary": {"subset": "v2", "targetRef": {"name": "accounts-v2"}},
            "progressDeadline": "72h",
            "scaleDownAfter": "168h",
            "analysis": {"interval": "24h", "checkInterval": "24h", "stepWeights": [1, 100]},
        }
    )
    frame = bounded.Frame(
        gap=bounded.DAY,
        measurements={},
        gates={},
        target_ready=True,
        readable=True,
        lag=0,
        writer=None,
        chaos=bounded.ChaosReading(*(bounded.Measurement.no_data(),) * 5),
        command=None,
        request=None,
    )
    world = _world(spec, [frame], datetime(2100, 1, 1, tzinfo=bounded.UTC), 0)
    world.run(max_ticks=20)
    assert world.status.phase is Phase.SUCCEEDED


@BOUNDS
@given(st.data())
def test_decide_never_raises_from_any_status_the_model_admits(data: st.DataObject) -> None:
    """A status edited by hand (any phase, step, weight and count, any time from 1970 to 2999,
    records of other revisions) that still validates: the rollout carries on from it, tick
    after tick, and never raises; a time outside those years is refused by the model instead."""
    spec = data.draw(bounded.specs(), label="spec")
    rollout = revision.of(spec)
    wire = data.draw(bounded.statuses(spec, ("", rollout, "other")), label="status")
    frames = data.draw(st.lists(bounded.frames(spec), min_size=1, max_size=4), label="frames")
    world = _world(spec, frames, data.draw(bounded.starts(), label="now"), 0)
    world.status = CanaryStatus.model_validate(wire)
    # Not read back: clocks edited near the model's last year are shifted by the time spent
    # suspended when the rollout resumes, possibly past 2999, which the model then refuses (a
    # status that cannot be read, not a crash). A suspendedAt in the future shifts nothing.
    world.run(max_ticks=50, reads_back=False)
