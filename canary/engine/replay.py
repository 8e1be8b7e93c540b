"""Replaying a rollout against a simulated route and recorded (or generated) measurements.

A pure loop over `decide`: it applies each SetWeights to an in-memory route, marks a split as
applied one tick after it was written (as a real data plane lags its config), and asks
`measure` for the values a tick wanted. Tests use it to drive whole rollouts by table; the
benchmark uses it to count ticks per second; later, recorded metrics can be replayed through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from canary.api.commands import Command
from canary.api.spec import CanarySpec
from canary.api.status import TERMINAL_PHASES, CanaryStatus
from canary.engine import comparing, revision
from canary.engine.actions import Decision, SetWeights
from canary.engine.decide import decide
from canary.engine.observation import (
    CountsReading,
    GateResult,
    Measurement,
    Observation,
    Traffic,
)
from canary.engine.wanted import Wanted, wanted

# (metric name, canary weight, seconds since the start) -> what the provider would answer.
Measure = Callable[[str, int, float], Measurement]
# (metric name, canary weight, since, now) -> each side's counts in [since, now], for a check
# that compares with stable.
Count = Callable[[str, int, datetime, datetime], CountsReading]


@dataclass
class Route:
    weights: dict[str, int]
    applied: bool = True

    def apply(self, action: SetWeights) -> None:
        updated = dict.fromkeys(self.weights, 0)
        updated[action.stable_subset] = action.stable_weight
        updated[action.canary_subset] = action.canary_weight
        if updated != self.weights:
            self.weights = updated
            self.applied = False


@dataclass
class Replay:
    spec: CanarySpec
    route: Route
    measure: Measure
    start: datetime
    tick_seconds: float
    target_ready: bool | None = None
    # The canary targetRef's pod template revision, as the Workloads port would read it.
    target_revision: str = ""
    # A command in the Canary's annotations (canary promote|abort|retry), until cleared.
    command: Command | None = None
    gates: Mapping[str, GateResult] = field(default_factory=dict)
    status: CanaryStatus = field(default_factory=CanaryStatus)
    decisions: list[Decision] = field(default_factory=list)
    # The clock carries on across calls to run(), so a replay can be stopped and resumed.
    now: datetime | None = None
    # The comparing checks' counts; None: those checks are never read.
    count: Count | None = None

    def run(self, *, max_ticks: int, keep: bool = True) -> CanaryStatus:
        now = self.start if self.now is None else self.now
        step = timedelta(seconds=self.tick_seconds)
        for _ in range(max_ticks):
            # Read each tick: a test may change the spec or the target between runs.
            rev = revision.of(self.spec, target_revision=self.target_revision)
            asked = wanted(self.spec, self.status, now)
            seen = self._observe(rev, asked, now)
            decision = decide(self.spec, self.status, seen, now)
            if keep:
                self.decisions.append(decision)
            self.route.applied = True
            for action in decision.actions:
                if isinstance(action, SetWeights):
                    self.route.apply(action)
            self.status = decision.status
            now += step
            self.now = now
            if self.status.phase in TERMINAL_PHASES:
                break
        return self.status

    def _observe(self, rev: str, asked: Wanted, now: datetime) -> Observation:
        elapsed = (now - self.start).total_seconds()
        weight = self.route.weights.get(self.spec.canary.subset, 0)
        return Observation(
            revision=rev,
            traffic=Traffic(weights=dict(self.route.weights), applied=self.route.applied),
            target_ready=self.target_ready,
            target_revision=self.target_revision,
            command=self.command,
            # As the controller does: a check that only compares has no value to measure.
            measurements={
                m.name: self.measure(m.name, weight, elapsed)
                for m in asked.metrics
                if m.threshold_range is not None
            },
            comparisons=self._counted(asked, weight, now),
            gates={h.name: self.gates[h.name] for h in asked.webhooks if h.name in self.gates},
        )

    def _counted(self, asked: Wanted, weight: int, now: datetime) -> dict[str, CountsReading]:
        if self.count is None:
            return {}
        readings: dict[str, CountsReading] = {}
        for metric in asked.metrics:
            since = comparing.window_start(self.status, metric.name)
            if metric.compare is not None and since is not None:
                readings[metric.name] = self.count(metric.name, weight, since, now)
        return readings
