"""The comparison with stable wired into decide: whole rollouts on synthetic traffic.

`decide` is pure, so a rollout judged by the sequential test is a loop (engine/replay.py) fed by
a traffic model: each side serves Poisson requests at its share of the load, each failing with
its side's probability, and every reading is the counts since the window `comparing` says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from canary.api.comparison import ComparisonVerdict, SequentialState
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Phase, Verdict
from canary.engine import comparing, plan, revision, sequential
from canary.engine.actions import Notify, SetWeights
from canary.engine.observation import CountsReading, Measurement
from canary.engine.replay import Replay, Route
from tests.traffic import binomial, poisson

from .builders import T0, make_spec

COMPARE = {"name": "request-success-rate", "compare": {"against": "stable"}}


def _spec(*metrics: dict[str, Any], **analysis: Any) -> CanarySpec:
    fields: dict[str, Any] = {
        "interval": "60s",
        "checkInterval": "10s",
        "threshold": 5,
        "stepWeights": [10, 20, 50],
        "metrics": list(metrics) or [COMPARE],
        **analysis,
    }
    return make_spec(**fields)


@dataclass
class World:
    """Requests served so far, per 10 s slice: (end of slice, canary req, bad, stable req, bad)."""

    rng: random.Random
    rps: float = 200.0
    stable_rate: float = 0.01
    canary_rate: float = 0.01
    served: list[tuple[datetime, int, int, int, int]] = field(default_factory=list)
    last: datetime = T0
    # What a reading returns instead of counts, to try a side being unknown.
    broken: Measurement | None = None

    def count(self, name: str, weight: int, since: datetime, now: datetime) -> CountsReading:
        seconds = (now - self.last).total_seconds()
        if seconds > 0:
            share = weight / 100
            canary = poisson(self.rng, self.rps * seconds * share)
            stable = poisson(self.rng, self.rps * seconds * (1 - share))
            self.served.append(
                (
                    now,
                    canary,
                    binomial(self.rng, canary, self.canary_rate),
                    stable,
                    binomial(self.rng, stable, self.stable_rate),
                )
            )
            self.last = now
        sums = [0, 0, 0, 0]
        for end, *counts in self.served:
            if end > since:
                sums = [a + b for a, b in zip(sums, counts, strict=True)]
        sides = [Measurement.of(float(value)) for value in sums]
        if self.broken is not None:
            sides[3] = self.broken
        return CountsReading(since, *sides)


def _replay(spec: CanarySpec, world: World) -> Replay:
    return Replay(
        spec=spec,
        route=Route({"v1": 100}),
        measure=lambda name, weight, t: Measurement.of(99.0, samples=500),
        start=T0,
        tick_seconds=10,
        count=world.count,
    )


def _reasons(replay: Replay) -> list[str]:
    return [
        action.reason
        for decision in replay.decisions
        for action in decision.actions
        if isinstance(action, Notify)
    ]


def _weights(replay: Replay) -> list[int]:
    return [
        action.canary_weight
        for decision in replay.decisions
        for action in decision.actions
        if isinstance(action, SetWeights)
    ]


def test_a_canary_proven_worse_is_rolled_back_at_once_whatever_the_threshold() -> None:
    """5% against 1%: proven within a few readings, rolled back on that tick (threshold is 5)."""
    world = World(random.Random(1), canary_rate=0.05)
    replay = _replay(_spec(), world)
    status = replay.run(max_ticks=100)
    assert status.phase is Phase.FAILED
    assert _weights(replay)[-1] == 0
    assert _reasons(replay).count("RegressionProven") == 1
    failed = [check for check in status.history if check.passed is False]
    assert len(failed) == 1, "one proof is enough: no waiting for threshold failures"
    record = failed[0].comparison
    assert record is not None
    assert record.verdict is ComparisonVerdict.REGRESSION
    assert record.regression_evidence >= record.threshold
    rolled = next(
        decision.status.message
        for decision in replay.decisions
        if decision.status.phase is Phase.ROLLING_BACK
    )
    assert rolled.startswith("request-success-rate: canary ")
    assert "proven worse after" in rolled
    assert "vs stable 1." in rolled or "vs stable 0.9" in rolled
    state = status.sequential[0]
    assert state.verdict is ComparisonVerdict.REGRESSION
    # The end says why, not only that it went back.
    assert status.message.startswith("rolled back: v1 receives 100% (request-success-rate: ")
    assert "proven worse after" in status.message


def test_a_canary_like_stable_walks_every_step_at_the_interval() -> None:
    """A/A without advanceEarly: the comparison passes while undecided or equivalent, and the
    steps take their interval."""
    world = World(random.Random(2))
    replay = _replay(_spec(), world)
    status = replay.run(max_ticks=100)
    assert status.phase is Phase.SUCCEEDED
    assert _weights(replay) == [10, 20, 50, 100]
    assert "AdvancedEarly" not in _reasons(replay)
    judged = [check for check in status.history if check.comparison is not None]
    assert judged
    assert all(check.verdict is Verdict.PASS for check in judged)
    assert status.sequential
    assert status.sequential[0].canary_requests > 0


def test_advance_early_ends_a_step_once_equivalence_is_shown() -> None:
    """Heavy A/A traffic shows equivalence within minEffect; with advanceEarly the steps end
    before their interval, and the rollout takes less time than its steps' intervals add up to."""
    world = World(random.Random(3), rps=2000, stable_rate=0.05, canary_rate=0.05)
    replay = _replay(_spec(advanceEarly=True), world)
    status = replay.run(max_ticks=100)
    assert status.phase is Phase.SUCCEEDED
    assert "AdvancedEarly" in _reasons(replay)
    assert status.sequential[0].verdict is ComparisonVerdict.EQUIVALENT
    took = (replay.now or T0) - T0
    assert took < timedelta(seconds=3 * 60)


def test_an_unknown_side_is_no_data_never_a_pass() -> None:
    """Stable's bad events unreadable: the check waits, then fails; it never passes."""
    world = World(random.Random(4), broken=Measurement.error("Prometheus down"))
    replay = _replay(_spec(COMPARE | {"onNoData": "wait", "noDataTimeout": "30s"}), world)
    status = replay.run(max_ticks=100)
    assert status.phase is Phase.FAILED
    judged = [check for check in status.history if check.comparison is not None]
    assert judged
    assert all(check.verdict is not Verdict.PASS for check in judged)
    assert "stable bad events: Prometheus down" in judged[0].message
    assert all(state.canary_requests == 0 for state in status.sequential)


def test_a_range_beside_the_comparison_is_judged_too() -> None:
    """compare and thresholdRange on one check: the range failing fails the check."""
    world = World(random.Random(5))
    metric = COMPARE | {"thresholdRange": {"min": 99.5}}
    replay = _replay(_spec(metric), world)
    status = replay.run(max_ticks=100)
    assert status.phase is Phase.FAILED
    failed = [check for check in status.history if check.passed is False]
    assert failed
    assert "99 is outside >= 99.5" in failed[0].message
    assert failed[0].comparison is not None
    assert failed[0].threshold == ">= 99.5; vs stable (alpha 0.01, minEffect 1.5)"


def test_a_restarted_controller_carries_the_same_test_on() -> None:
    """The status through JSON at every tick (as the API server stores it): the same decisions
    as a controller that never restarted."""
    spec = _spec()
    straight = _replay(spec, World(random.Random(6), canary_rate=0.025))
    straight.run(max_ticks=100)
    restarted = _replay(spec, World(random.Random(6), canary_rate=0.025))
    for _ in range(100):
        restarted.run(max_ticks=1)
        restarted.status = CanaryStatus.model_validate_json(
            restarted.status.model_dump_json(by_alias=True)
        )
        if restarted.status.phase in (Phase.SUCCEEDED, Phase.FAILED):
            break
    assert restarted.status.phase == straight.status.phase
    assert restarted.status.sequential == straight.status.sequential


def test_a_new_rollout_starts_a_new_test() -> None:
    """A changed spec is a new revision: the old revision's test is dropped, not carried on."""
    world = World(random.Random(7))
    replay = _replay(_spec(), world)
    replay.run(max_ticks=12)
    assert replay.status.sequential
    old = replay.status.sequential[0]
    replay.spec = _spec(stepWeights=[10, 30, 50])
    replay.run(max_ticks=1)
    assert all(state.revision != old.revision for state in replay.status.sequential)


@pytest.mark.parametrize(
    ("suspended_for", "last_check"),
    [(timedelta(seconds=100), 25), (timedelta(seconds=5), 25)],
)
def test_a_window_after_a_suspension_never_overlaps_time_counted(
    suspended_for: timedelta, last_check: float
) -> None:
    """Resuming shifts the step's clock forward by the frozen time; the next window starts at
    the last judged tick (shifted too), never before a reading already counted."""
    spec = _spec()
    state = _state_after_a_reading(spec, since=T0)
    shifted = T0 + suspended_for
    status = CanaryStatus(
        phase=Phase.PROGRESSING,
        revision=state.revision,
        step=0,
        step_started_at=shifted,
        last_check_at=T0 + timedelta(seconds=last_check) + suspended_for,
        sequential=(state,),
    )
    start = comparing.window_start(status, "request-success-rate")
    assert start is not None
    assert start >= T0 + timedelta(seconds=last_check)
    assert start >= shifted


def test_the_window_is_the_step_start_until_the_clock_restarts() -> None:
    spec = _spec()
    state = _state_after_a_reading(spec, since=T0)
    status = CanaryStatus(
        phase=Phase.PROGRESSING,
        revision=state.revision,
        step=0,
        step_started_at=T0,
        last_check_at=T0 + timedelta(seconds=20),
        sequential=(state,),
    )
    assert comparing.window_start(status, "request-success-rate") == T0
    assert comparing.window_start(status.model_copy(update={"step": 1}), "x") == T0
    assert comparing.window_start(status.model_copy(update={"step_started_at": None}), "x") is None


def _state_after_a_reading(spec: CanarySpec, *, since: datetime) -> SequentialState:
    assert spec.analysis.metrics[0].compare is not None
    state = sequential.start(
        "request-success-rate",
        revision=revision.of(spec),
        comparison=spec.analysis.metrics[0].compare,
    )
    return sequential.observe(
        state, step=0, since=since, counts=sequential.Counts(100, 1, 900, 9)
    ).state


A_A_ROLLOUTS = 10_000


def test_a_a_rollouts_through_decide_rarely_roll_back() -> None:
    """10,000 whole A/A rollouts through decide (canary identical to stable, 1% errors, readings
    every 10 s, the share changing at each step): fewer false rollbacks than alpha allows.
    test_sequential.py holds the test alone to the bound; this holds the wiring too (windows,
    counts carried across steps, the immediate rollback)."""
    rng = random.Random(16)
    spec = _spec()
    rolled_back = 0
    for _ in range(A_A_ROLLOUTS):
        replay = _replay(spec, World(rng, rps=50))
        status = replay.run(max_ticks=60, keep=False)
        assert status.phase in (Phase.SUCCEEDED, Phase.FAILED)
        rolled_back += status.phase is Phase.FAILED
    print(f"\n{rolled_back} false rollbacks in {A_A_ROLLOUTS} A/A rollouts through decide")
    assert rolled_back <= 0.01 * A_A_ROLLOUTS


@pytest.mark.parametrize(("waited", "verdict"), [(5.0, Verdict.INCONCLUSIVE), (60.0, Verdict.FAIL)])
def test_a_step_without_canary_requests_yet_waits_whatever_on_no_data_says(
    waited: float, verdict: Verdict
) -> None:
    """The first scrapes of a step may not have landed: no canary request yet waits up to the
    step's interval, even under onNoData: fail (the default), and fails only after it."""
    spec = _spec()
    rule = plan.of(spec).rules[0]
    assert rule.compare is not None
    status = CanaryStatus(
        phase=Phase.PROGRESSING, revision=revision.of(spec), step=0, step_started_at=T0
    )
    zero = Measurement.of(0.0)
    reading = CountsReading(T0, zero, zero, Measurement.of(900.0), Measurement.of(9.0))
    compared = comparing.judged(
        rule, rule.compare, reading, status, waited=waited, step_interval=60.0
    )
    assert compared.judgement.verdict is verdict
    assert "0 canary requests in this step" in compared.judgement.message
