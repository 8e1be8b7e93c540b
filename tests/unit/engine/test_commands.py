"""canary promote|abort|retry as the engine answers them: once per id, in the status."""

from __future__ import annotations

from canary.api.commands import Command, Verb
from canary.api.status import Phase
from canary.engine.actions import SetWeights
from canary.engine.observation import Measurement
from canary.engine.replay import Replay, Route

from .builders import T0, make_spec

GOOD = lambda name, weight, t: Measurement.of(99.9, samples=500)  # noqa: E731


def _replay(**analysis: object) -> Replay:
    return Replay(
        spec=make_spec(**analysis),
        route=Route({"v1": 100}),
        measure=GOOD,
        start=T0,
        tick_seconds=10,
    )


def _until(replay: Replay, phase: Phase, *, step: int = 0, ticks: int = 40) -> None:
    for _ in range(ticks):
        replay.run(max_ticks=1)
        reached = replay.status.phase is phase and replay.status.step == step
        live = phase is not Phase.PROGRESSING or replay.status.step_started_at is not None
        if reached and live:
            return
    raise AssertionError(f"never reached {phase} step {step}: {replay.status.message}")


def _weights(replay: Replay, since: int) -> list[int]:
    return [
        action.canary_weight
        for decision in replay.decisions[since:]
        for action in decision.actions
        if isinstance(action, SetWeights)
    ]


def test_abort_mid_rollout_rolls_back_at_once_and_answers_once() -> None:
    replay = _replay(stepWeights=[10, 50, 80])
    _until(replay, Phase.PROGRESSING, step=1)
    replay.command = Command(verb=Verb.ABORT, id="a1", by="ci")
    since = len(replay.decisions)
    replay.run(max_ticks=1)
    assert replay.status.phase is Phase.ROLLING_BACK
    assert _weights(replay, since) == [0]
    answer = replay.status.last_command
    assert answer is not None
    assert (answer.id, answer.accepted) == ("a1", True)
    assert "aborted by ci" in answer.message
    # The annotation stays until the CLI removes it: never acted on twice.
    assert replay.run(max_ticks=20).phase is Phase.FAILED
    assert replay.status.last_command == answer
    assert replay.route.weights == {"v1": 100, "v2": 0}


def test_abort_of_an_ended_rollout_is_answered_with_nothing_to_do() -> None:
    replay = _replay(stepWeights=[50])
    assert replay.run(max_ticks=40).phase is Phase.SUCCEEDED
    replay.command = Command(verb=Verb.ABORT, id="a2")
    since = len(replay.decisions)
    replay.run(max_ticks=1)
    answer = replay.status.last_command
    assert answer is not None
    assert answer.accepted is False
    assert "nothing to abort" in answer.message
    assert replay.status.phase is Phase.SUCCEEDED
    assert _weights(replay, since) == []


def test_promote_waits_for_the_current_steps_checks_then_skips_the_rest() -> None:
    replay = _replay(stepWeights=[10, 50, 80], interval="5m", checkInterval="10s")
    _until(replay, Phase.PROGRESSING, step=0)
    replay.command = Command(verb=Verb.PROMOTE, id="p1")
    since = len(replay.decisions)
    replay.run(max_ticks=1)
    assert replay.status.promote_requested == "checks"
    assert replay.status.last_command is not None
    assert replay.status.last_command.accepted
    assert replay.run(max_ticks=20).phase is Phase.SUCCEEDED
    # The step's interval is 5 minutes: only its checks were waited for, not its length.
    assert replay.now is not None
    assert (replay.now - T0).total_seconds() < 120
    assert _weights(replay, since) == [100]


def test_promote_still_rolls_back_when_the_current_steps_checks_fail() -> None:
    replay = _replay(stepWeights=[10, 50], interval="5m", checkInterval="10s", threshold=1)
    _until(replay, Phase.PROGRESSING, step=0)
    replay.measure = lambda name, weight, t: Measurement.of(50.0, samples=500)
    replay.command = Command(verb=Verb.PROMOTE, id="p2")
    assert replay.run(max_ticks=20).phase is Phase.FAILED


def test_promote_force_promotes_without_waiting_for_checks() -> None:
    replay = _replay(stepWeights=[10, 50], interval="5m", checkInterval="1m")
    _until(replay, Phase.PROGRESSING, step=0)
    replay.measure = lambda name, weight, t: Measurement.no_data()
    replay.command = Command(verb=Verb.PROMOTE, id="p3", force=True)
    since = len(replay.decisions)
    replay.run(max_ticks=1)
    assert replay.status.phase is Phase.PROMOTING
    assert _weights(replay, since) == [100]


def test_retry_starts_a_failed_rollout_over_and_only_a_failed_one() -> None:
    replay = _replay(stepWeights=[50], threshold=1)
    replay.measure = lambda name, weight, t: Measurement.of(50.0, samples=500)
    assert replay.run(max_ticks=40).phase is Phase.FAILED
    replay.measure = GOOD
    replay.command = Command(verb=Verb.RETRY, id="r1")
    since = len(replay.decisions)
    replay.run(max_ticks=1)
    assert replay.status.phase in (Phase.INITIALIZING, Phase.PROGRESSING)
    assert replay.status.failed_checks == 0
    assert replay.run(max_ticks=40).phase is Phase.SUCCEEDED
    assert _weights(replay, since) == [50, 100]
    replay.command = Command(verb=Verb.RETRY, id="r2")
    replay.run(max_ticks=1)
    answer = replay.status.last_command
    assert answer is not None
    assert answer.accepted is False
    assert "nothing to retry" in answer.message


def test_a_paused_rollout_answers_promote_without_acting() -> None:
    replay = _replay(stepWeights=[10, 50])
    _until(replay, Phase.PROGRESSING, step=0)
    wire = replay.spec.model_dump(by_alias=True, exclude_none=True)
    replay.spec = type(replay.spec).model_validate({**wire, "suspend": True})
    replay.command = Command(verb=Verb.PROMOTE, id="p4")
    replay.run(max_ticks=1)
    answer = replay.status.last_command
    assert answer is not None
    assert answer.accepted is False
    assert "paused" in answer.message
    assert replay.status.promote_requested is None
