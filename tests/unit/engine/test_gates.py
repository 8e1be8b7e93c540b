"""Flagger's webhook types as the engine honours them: what waits, what counts, what stops."""

from __future__ import annotations

from typing import Any

from canary.api.status import CanaryStatus, Phase
from canary.engine import conditions
from canary.engine.actions import CallWebhook, Notify, SetWeights
from canary.engine.observation import GateResult, Measurement
from canary.engine.replay import Replay, Route
from canary.engine.wanted import wanted

from .builders import T0, make_spec

GOOD = lambda name, weight, t: Measurement.of(99.9, samples=500)  # noqa: E731
YES, NO = GateResult(True, "HTTP 200"), GateResult(False, "HTTP 403: closed")


def _hook(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "url": f"http://gates.test/{name}"}


def _replay(*hooks: dict[str, Any], **analysis: Any) -> Replay:
    return Replay(
        spec=make_spec(webhooks=list(hooks), **analysis),
        route=Route({"v1": 100}),
        measure=GOOD,
        start=T0,
        tick_seconds=10,
    )


def _condition(status: CanaryStatus, kind: str) -> tuple[str, str] | None:
    found = [c for c in status.conditions if c.type == kind]
    return (found[0].status, found[0].reason) if found else None


def _weights(replay: Replay) -> list[int]:
    return [
        a.canary_weight for d in replay.decisions for a in d.actions if isinstance(a, SetWeights)
    ]


def test_confirm_rollout_holds_everything_and_pre_rollout_is_not_asked_before_it() -> None:
    replay = _replay(_hook("approve", "confirm-rollout"), _hook("migrate", "pre-rollout"))
    replay.gates = {"approve": NO, "migrate": YES}
    replay.run(max_ticks=5)
    status = replay.status
    assert status.phase is Phase.INITIALIZING
    assert status.waiting_for == "confirm-rollout webhook approve"
    assert _condition(status, conditions.WAITING) == ("True", "GateClosed")
    assert status.failed_checks == 0
    assert _weights(replay) == []
    asked = {hook.name for hook in wanted(replay.spec, status, replay.now or T0).webhooks}
    assert asked == {"approve"}
    # One Waiting event, not one per tick; the refusal kept once in the history.
    waits = [a for d in replay.decisions for a in d.actions if isinstance(a, Notify)]
    assert [n.reason for n in waits].count("Waiting") == 1
    assert [c.name for c in status.history] == ["approve"]
    replay.gates = {"approve": YES, "migrate": YES}
    assert replay.run(max_ticks=40).phase is Phase.SUCCEEDED
    assert replay.status.waiting_for == ""
    assert _condition(replay.status, conditions.WAITING) == ("False", "GateOpen")


def test_confirm_traffic_increase_holds_each_step_while_its_checks_keep_running() -> None:
    replay = _replay(
        _hook("more", "confirm-traffic-increase"), stepWeights=[10, 50], checkInterval="10s"
    )
    replay.gates = {"more": NO}
    replay.run(max_ticks=20)
    status = replay.status
    assert (status.phase, status.canary_weight) == (Phase.PROGRESSING, 10)
    assert status.waiting_for == "confirm-traffic-increase webhook more"
    metric_checks = [c for c in status.history if c.name == "request-success-rate"]
    assert len(metric_checks) >= 10
    replay.gates = {"more": YES}
    assert replay.run(max_ticks=40).phase is Phase.SUCCEEDED
    assert _weights(replay) == [10, 50, 100]


def test_confirm_promotion_holds_the_last_step() -> None:
    replay = _replay(_hook("ship", "confirm-promotion"), stepWeights=[10, 50])
    replay.gates = {"ship": NO}
    replay.run(max_ticks=20)
    assert (replay.status.phase, replay.status.canary_weight) == (Phase.PROGRESSING, 50)
    assert replay.status.waiting_for == "confirm-promotion webhook ship"
    replay.gates = {"ship": YES}
    assert replay.run(max_ticks=10).phase is Phase.SUCCEEDED


def test_a_rollback_hook_that_says_yes_rolls_back_at_once() -> None:
    replay = _replay(_hook("pull-cord", "rollback"), stepWeights=[10, 50])
    replay.gates = {"pull-cord": NO}
    replay.run(max_ticks=5)
    assert replay.status.phase is Phase.PROGRESSING
    replay.gates = {"pull-cord": YES}
    assert replay.run(max_ticks=10).phase is Phase.FAILED
    assert "rollback webhook pull-cord answered yes" in " ".join(
        n.message for d in replay.decisions for n in d.actions if isinstance(n, Notify)
    )
    assert _condition(replay.status, conditions.PROMOTED) == ("False", "Failed")


def test_event_hooks_are_told_every_event() -> None:
    replay = _replay(_hook("audit", "event"), stepWeights=[50])
    assert replay.run(max_ticks=40).phase is Phase.SUCCEEDED
    for decision in replay.decisions:
        told = [a.event for a in decision.actions if isinstance(a, CallWebhook)]
        notices = [a for a in decision.actions if isinstance(a, Notify)]
        assert told == notices
    assert _condition(replay.status, conditions.PROMOTED) == ("True", "Succeeded")


def test_post_rollout_hooks_get_the_final_phase() -> None:
    replay = _replay(_hook("after", "post-rollout"), stepWeights=[50])
    replay.run(max_ticks=40)
    calls = [a for d in replay.decisions for a in d.actions if isinstance(a, CallWebhook)]
    assert [(c.hook.name, c.phase) for c in calls] == [("after", "Succeeded")]
