"""Whole rollouts replayed against a simulated route: what a user sees from start to end."""

from __future__ import annotations

from canary.api.status import CanaryStatus, Phase
from canary.engine.actions import SetWeights
from canary.engine.observation import Measurement
from canary.engine.replay import Replay, Route

from .builders import T0, make_spec


def _replay(measure: object, **analysis: object) -> Replay:
    spec = make_spec(**analysis)
    return Replay(
        spec=spec,
        route=Route({"v1": 100}),
        measure=measure,  # type: ignore[arg-type]
        start=T0,
        tick_seconds=10,
    )


def _weights(replay: Replay) -> list[int]:
    return [
        action.canary_weight
        for decision in replay.decisions
        for action in decision.actions
        if isinstance(action, SetWeights)
    ]


def test_a_healthy_canary_walks_every_step_and_is_promoted() -> None:
    """Good values all along: 10, 50, then 100, ending Succeeded with v2 stable."""
    replay = _replay(lambda name, weight, t: Measurement.of(99.9, samples=500))
    status = replay.run(max_ticks=100)
    assert status.phase is Phase.SUCCEEDED
    assert _weights(replay) == [10, 50, 100]
    assert replay.route.weights == {"v1": 0, "v2": 100}
    assert status.stable_subset == "v2"


def test_a_canary_that_degrades_at_50_percent_is_rolled_back() -> None:
    """Fine at 10%, failing at 50%: the rollout goes back to 100% stable and ends Failed."""
    replay = _replay(
        lambda name, weight, t: Measurement.of(99.9 if weight < 50 else 90.0, samples=500)
    )
    status = replay.run(max_ticks=100)
    assert status.phase is Phase.FAILED
    assert _weights(replay) == [10, 50, 0]
    assert replay.route.weights == {"v1": 100, "v2": 0}
    failed = [c for c in status.history if c.passed is False]
    assert len(failed) == 2
    assert all(c.weight == 50 for c in failed)


def test_no_data_at_all_never_promotes() -> None:
    """A query that never returns a value ends in a rollback, not a promotion."""
    replay = _replay(lambda name, weight, t: Measurement.no_data())
    status = replay.run(max_ticks=100)
    assert status.phase is Phase.FAILED


def test_waiting_for_data_is_bounded_by_the_progress_deadline() -> None:
    """onNoData: wait with a long timeout still ends, at the phase deadline."""
    metric = {
        "name": "request-success-rate",
        "thresholdRange": {"min": 99},
        "onNoData": "wait",
        "noDataTimeout": "1h",
    }
    replay = _replay(lambda name, weight, t: Measurement.no_data(), metrics=[metric])
    status = replay.run(max_ticks=1000)
    assert status.phase is Phase.FAILED
    assert status.failed_checks == 0
    rolled = [d for d in replay.decisions if d.status.phase is Phase.ROLLING_BACK]
    assert "deadline" in rolled[0].status.message


def test_a_controller_restarted_mid_rollout_resumes_from_its_status() -> None:
    """Stopped after any tick, with only its status (as JSON) kept, a rollout carries on exactly:
    no step repeated or skipped, the same weights at the same times as an uninterrupted one."""
    good = lambda name, weight, t: Measurement.of(99.9, samples=500)  # noqa: E731
    straight = _replay(good)
    straight.run(max_ticks=100)
    expected = [(d.status.phase, d.status.canary_weight, d.actions) for d in straight.decisions]
    for stop_after in range(1, len(straight.decisions)):
        first = _replay(good)
        first.run(max_ticks=stop_after)
        restarted = _replay(good)
        restarted.route = first.route
        restarted.now = first.now
        restarted.status = CanaryStatus.model_validate_json(
            first.status.model_dump_json(by_alias=True)
        )
        restarted.run(max_ticks=100)
        resumed = first.decisions + restarted.decisions
        assert [(d.status.phase, d.status.canary_weight, d.actions) for d in resumed] == expected
