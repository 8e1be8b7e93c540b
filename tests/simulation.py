"""A controller's loop in miniature for property tests: ask `wanted`, observe, `decide`, write.

canary.engine.replay drives a rollout from a function of (metric, weight, time); here the world
is a generated `strategies.Stream`, so readiness, gate answers, the route's readability and the
data plane's lag change from tick to tick, and the target's pod template can change mid-rollout.
Every tick is kept with what went in and what came out, so a property can look at any
transition, and a simulation can be forked with its status sent through JSON, as a restarted
controller would read it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from canary.api.spec import CanarySpec
from canary.api.status import TERMINAL_PHASES, CanaryStatus
from canary.engine import revision
from canary.engine.actions import Decision, SetWeights
from canary.engine.decide import decide
from canary.engine.observation import Observation, Traffic
from canary.engine.wanted import wanted
from tests.strategies import Stream

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TickRecord:
    index: int
    now: datetime
    before: CanaryStatus
    seen: Observation
    decision: Decision
    # The live split once the tick's writes were made.
    route: Mapping[str, int]

    @property
    def after(self) -> CanaryStatus:
        return self.decision.status


@dataclass
class Simulation:
    spec: CanarySpec
    stream: Stream
    status: CanaryStatus = field(default_factory=CanaryStatus)
    tick: int = 0
    # The live route; None until the first tick builds it from the stream.
    weights: dict[str, int] | None = None
    # The first tick at which the data plane serves the route's current weights.
    applied_from: int = 0
    _revisions: dict[int, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.weights is None:
            canary = self.stream.initial_canary_weight
            self.weights = {self.spec.stable.subset: 100 - canary, self.spec.canary.subset: canary}

    def revision(self, build: int) -> str:
        if build not in self._revisions:
            self._revisions[build] = revision.of(self.spec, target_revision=f"build-{build}")
        return self._revisions[build]

    @property
    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.tick * self.stream.tick_seconds)

    @property
    def finished(self) -> bool:
        """Ended, and no later change of the pod template will start it again."""
        final = self.revision(len(self.stream.builds))
        return self.status.phase in TERMINAL_PHASES and self.status.revision == final

    def step(self) -> TickRecord:
        assert self.weights is not None
        frame, now = self.stream.frame(self.tick), self.now
        asked = wanted(self.spec, self.status, now)
        traffic = Traffic(weights=dict(self.weights), applied=self.tick >= self.applied_from)
        seen = Observation(
            revision=self.revision(self.stream.build(self.tick)),
            traffic=traffic if frame.route_readable else None,
            target_ready=frame.target_ready,
            measurements={metric.name: frame.measurements[metric.name] for metric in asked.metrics},
            gates={
                hook.name: frame.gates[hook.name]
                for hook in asked.webhooks
                if hook.name in frame.gates
            },
        )
        decision = decide(self.spec, self.status, seen, now)
        for action in decision.actions:
            if isinstance(action, SetWeights):
                self._write(action, lag=frame.lag)
        record = TickRecord(self.tick, now, self.status, seen, decision, dict(self.weights))
        self.status = decision.status
        self.tick += 1
        return record

    def _write(self, action: SetWeights, *, lag: int) -> None:
        assert self.weights is not None
        updated = dict.fromkeys(self.weights, 0)
        updated[action.stable_subset] = action.stable_weight
        updated[action.canary_subset] = action.canary_weight
        if updated != self.weights:
            self.weights = updated
            self.applied_from = self.tick + 1 + lag

    def run(self, *, max_ticks: int) -> list[TickRecord]:
        """Up to `max_ticks` more ticks, stopping early once finished."""
        records: list[TickRecord] = []
        while len(records) < max_ticks and not self.finished:
            records.append(self.step())
        return records

    def restarted(self) -> Simulation:
        """The same world, watched by a new controller that read its status back from JSON."""
        assert self.weights is not None
        stored = self.status.model_dump_json(by_alias=True)
        return replace(
            self,
            status=CanaryStatus.model_validate_json(stored),
            weights=dict(self.weights),
            _revisions=dict(self._revisions),
        )
