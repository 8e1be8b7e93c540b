"""Approval gates (spec.approvals): a person's yes or no, held in the status."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from canary.api.commands import Command, Verb
from canary.api.people import Decision
from canary.api.status import CanaryStatus, Phase
from canary.engine import conditions
from canary.engine.actions import Notify, SetWeights
from canary.engine.decide import decide
from canary.engine.observation import Measurement
from canary.engine.replay import Replay, Route

from . import builders
from .builders import T0, make_spec

GOOD = lambda name, weight, t: Measurement.of(99.9, samples=500)  # noqa: E731
BAD = lambda name, weight, t: Measurement.of(50.0, samples=500)  # noqa: E731


def _replay(
    approvals: dict[str, Any], notifications: list[dict[str, Any]] | None = None, **analysis: Any
) -> Replay:
    spec = make_spec(**analysis)
    extra = {"approvals": approvals, "notifications": notifications or []}
    spec = spec.model_validate({**spec.model_dump(by_alias=True), **extra})
    return Replay(spec=spec, route=Route({"v1": 100}), measure=GOOD, start=T0, tick_seconds=10)


def _weights(replay: Replay) -> list[int]:
    return [
        a.canary_weight for d in replay.decisions for a in d.actions if isinstance(a, SetWeights)
    ]


def _reasons(replay: Replay) -> list[str]:
    return [a.reason for d in replay.decisions for a in d.actions if isinstance(a, Notify)]


def _waiting(status: CanaryStatus) -> tuple[str, str] | None:
    found = [c for c in status.conditions if c.type == conditions.WAITING]
    return (found[0].status, found[0].reason) if found else None


def _decide(replay: Replay, verb: Verb, id: str, **fields: Any) -> None:
    replay.command = Command(verb=verb, id=id, **fields)


def test_the_promotion_gate_holds_the_last_step_until_approved() -> None:
    replay = _replay({"before": ["promotion"]})
    replay.run(max_ticks=30)
    status = replay.status
    assert (status.phase, status.canary_weight) == (Phase.PROGRESSING, 50)
    assert status.waiting_for == "approval for promotion"
    assert _waiting(status) == ("True", "GateClosed")
    [record] = status.approvals
    assert (record.gate, record.decision, record.revision) == ("promotion", None, status.revision)
    # Asked once, not once per tick; the phase's deadline (2m) does not run while it waits.
    assert _reasons(replay).count("ApprovalRequested") == 1
    assert replay.run(max_ticks=30).phase is Phase.PROGRESSING
    _decide(replay, Verb.APPROVE, "a1", by="alice", via="cli")
    assert replay.run(max_ticks=10).phase is Phase.SUCCEEDED
    [record] = replay.status.approvals
    assert (record.decision, record.by, record.via) == (Decision.APPROVED, "alice", "cli")
    assert record.decided_at is not None
    assert replay.status.last_command is not None
    assert replay.status.last_command.accepted
    assert "approved by alice via cli" in replay.status.last_command.message
    assert "Approved" in _reasons(replay)
    assert _waiting(replay.status) == ("False", "GateOpen")


def test_a_reject_rolls_back_at_once() -> None:
    replay = _replay({"before": ["promotion"]})
    replay.run(max_ticks=30)
    _decide(replay, Verb.REJECT, "r1", by="U0BOB", via="slack", gate="promotion")
    assert replay.run(max_ticks=10).phase is Phase.FAILED
    [record] = replay.status.approvals
    assert (record.decision, record.by, record.via) == (Decision.REJECTED, "U0BOB", "slack")
    assert _weights(replay)[-1] == 0
    assert "Rejected" in _reasons(replay)


def test_a_check_failing_while_it_waits_still_rolls_back() -> None:
    replay = _replay({"before": ["promotion"]}, checkInterval="10s")
    replay.run(max_ticks=30)
    assert replay.status.waiting_for == "approval for promotion"
    replay.measure = BAD
    assert replay.run(max_ticks=10).phase is Phase.FAILED


def test_the_rollout_gate_holds_before_any_weight_moves() -> None:
    replay = _replay({"before": ["rollout"]})
    replay.run(max_ticks=10)
    assert replay.status.phase is Phase.INITIALIZING
    assert replay.status.waiting_for == "approval for rollout"
    assert _weights(replay) == []
    _decide(replay, Verb.APPROVE, "a1")
    assert replay.run(max_ticks=40).phase is Phase.SUCCEEDED
    assert _weights(replay) == [10, 50, 100]


def test_traffic_increase_only_before_the_chosen_steps() -> None:
    replay = _replay({"before": ["trafficIncrease"], "steps": [3]}, stepWeights=[10, 30, 60])
    replay.run(max_ticks=30)
    assert (replay.status.canary_weight, replay.status.waiting_for) == (30, "approval for step 3")
    _decide(replay, Verb.APPROVE, "a1")
    assert replay.run(max_ticks=30).phase is Phase.SUCCEEDED
    assert [r.gate for r in replay.status.approvals] == ["step 3"]


def test_every_increase_when_no_steps_are_named() -> None:
    replay = _replay({"before": ["trafficIncrease", "promotion"]}, stepWeights=[10, 30])
    gates = []
    for n in range(3):
        replay.run(max_ticks=30)
        gates.append(replay.status.waiting_for)
        _decide(replay, Verb.APPROVE, f"a{n}")
    assert replay.run(max_ticks=10).phase is Phase.SUCCEEDED
    assert gates == ["approval for step 2", "approval for promotion", ""]


def test_a_timeout_rolls_back_or_says_once_and_waits() -> None:
    replay = _replay({"before": ["promotion"], "timeout": "1m"})
    assert replay.run(max_ticks=60).phase is Phase.FAILED
    assert replay.status.approvals[-1].decision is Decision.TIMED_OUT
    told = " ".join(a.message for d in replay.decisions for a in d.actions if isinstance(a, Notify))
    assert "nobody decided on approval for promotion within 1m" in told

    waits = _replay({"before": ["promotion"], "timeout": "1m", "onTimeout": "wait"})
    assert waits.run(max_ticks=60).phase is Phase.PROGRESSING
    assert waits.status.waiting_for == "approval for promotion (timed out; still waiting)"
    assert _reasons(waits).count("ApprovalTimedOut") == 1
    _decide(waits, Verb.APPROVE, "late")
    assert waits.run(max_ticks=10).phase is Phase.SUCCEEDED


def test_a_decision_is_taken_once_and_never_for_another_revision_or_gate() -> None:
    replay = _replay({"before": ["trafficIncrease", "promotion"]}, stepWeights=[10, 30])
    replay.run(max_ticks=30)
    revision = replay.status.revision
    _decide(replay, Verb.APPROVE, "old", revision="0123abcd", gate="step 2")
    replay.run(max_ticks=2)
    answer = replay.status.last_command
    assert answer is not None
    assert not answer.accepted
    assert "earlier revision" not in answer.message  # says which one, in its own words
    assert "revision 0123abcd" in answer.message
    _decide(replay, Verb.APPROVE, "wrong-gate", revision=revision, gate="promotion")
    replay.run(max_ticks=2)
    assert replay.status.last_command is not None
    assert "approval for promotion no longer waits" in replay.status.last_command.message
    assert replay.status.waiting_for == "approval for step 2"
    _decide(replay, Verb.APPROVE, "first", revision=revision, gate="step 2", by="U0A")
    replay.run(max_ticks=1)
    # A second click on the same message, after the first was carried out: nothing more.
    _decide(replay, Verb.REJECT, "second", revision=revision, gate="step 2", by="U0B")
    replay.run(max_ticks=1)
    answer = replay.status.last_command
    assert answer is not None
    assert (answer.id, answer.accepted) == ("second", False)
    assert "already approved by U0A via cli" in answer.message
    assert replay.status.phase is Phase.PROGRESSING
    assert [r.decision for r in replay.status.approvals] == [Decision.APPROVED]


def test_approve_with_nothing_waiting_is_refused() -> None:
    replay = _replay({"before": ["promotion"]})
    replay.run(max_ticks=2)
    _decide(replay, Verb.APPROVE, "early")
    replay.run(max_ticks=1)
    answer = replay.status.last_command
    assert answer is not None
    assert not answer.accepted
    assert "no approval waits" in answer.message


def test_a_new_revision_asks_again() -> None:
    replay = _replay({"before": ["promotion"]})
    replay.run(max_ticks=30)
    _decide(replay, Verb.APPROVE, "a1")
    replay.run(max_ticks=10)
    replay.spec = replay.spec.model_copy(
        update={"canary": replay.spec.canary.model_copy(update={"subset": "v3"})}
    )
    replay.route = Route({"v1": 0, "v2": 100, "v3": 0})
    replay.run(max_ticks=30)
    assert replay.status.waiting_for == "approval for promotion"
    assert [r.decision for r in replay.status.approvals] == [None]


def test_force_promotion_skips_the_gate() -> None:
    replay = _replay({"before": ["promotion"]})
    replay.run(max_ticks=30)
    _decide(replay, Verb.PROMOTE, "p1", force=True)
    assert replay.run(max_ticks=10).phase is Phase.SUCCEEDED


def test_chat_problems_are_a_condition_and_nothing_else() -> None:
    quiet = _replay({"before": ["promotion"]}, [{"provider": "team"}])
    quiet.run(max_ticks=3)
    spec = quiet.spec
    seen = builders.seen(spec, {"v1": 100})
    failing = replace(seen, chat_problems=("ChatProvider team: invalid_auth",))
    first = decide(spec, quiet.status, failing, T0)
    [notified] = [c for c in first.status.conditions if c.type == conditions.NOTIFIED]
    assert (notified.status, notified.message) == ("False", "ChatProvider team: invalid_auth")
    # The same problems again: no copy of the status for it.
    again = decide(spec, first.status, failing, T0)
    assert [c for c in again.status.conditions if c.type == conditions.NOTIFIED] == [notified]
    healed = decide(spec, first.status, seen, T0)
    [notified] = [c for c in healed.status.conditions if c.type == conditions.NOTIFIED]
    assert (notified.status, notified.reason) == ("True", "ChatDelivered")
    # Phase and actions never depend on it.
    without = decide(spec, quiet.status, seen, T0)
    assert (first.status.phase, first.actions) == (without.status.phase, without.actions)
