"""The publisher in the tick: told after act, never in the way, its problems in the observation."""

from __future__ import annotations

from typing import Any

import pytest

from canary.api.chat_provider import ChatProvider, SlackBot
from canary.api.spec import CanarySpec
from canary.api.status import Phase
from canary.controller import reconcile
from canary.controller.chat.outbox import Outbox
from canary.controller.chat.publisher import ChatPublisher
from canary.errors import ChatError
from canary.ports import Chat, Secrets
from tests.unit.controller.chat.test_outbox import ScriptedChat
from tests.unit.controller.test_reconcile import KEY, Harness, _spec


def _notified() -> CanarySpec:
    base = _spec().model_dump(by_alias=True, exclude_none=True)
    return CanarySpec.model_validate(
        {**base, "notifications": [{"provider": "team", "channel": "#rollouts"}]}
    )


def _with_chat(harness: Harness, chat: ScriptedChat) -> Outbox:
    harness.store.chat_providers[(KEY.namespace, "team")] = ChatProvider.model_validate(
        {
            "metadata": {"name": "team", "namespace": KEY.namespace},
            "spec": {"slack": {"token": {"name": "s", "key": "token"}}},
        }
    )

    def factory(_spec: Any, _namespace: str, _secrets: Secrets) -> Chat:
        return chat

    outbox = Outbox(attempts=2, backoff=0.01, backoff_max=0.01)
    harness.reconciler.chat = ChatPublisher(
        store=harness.store,
        secrets=harness.sources.secrets,
        outbox=outbox,
        factories={SlackBot: factory},
    )
    outbox.start()
    return outbox


def _phases(harness: Harness, ticks: int) -> list[Phase | None]:
    seen = []
    for _ in range(ticks):
        harness.reconciler.tick(KEY)
        harness.clock.advance(5)
        seen.append(harness.store.stored[KEY].status.phase)
    return seen


def test_a_rollout_is_told_in_one_message_and_its_thread() -> None:
    harness = Harness(_notified())
    chat = ScriptedChat()
    outbox = _with_chat(harness, chat)
    try:
        assert _phases(harness, 20)[-1] is Phase.SUCCEEDED
        assert outbox.wait_idle(5)
    finally:
        outbox.stop(1)
    kinds = [kind for kind, *_ in chat.calls]
    assert kinds[0] == "post"
    assert kinds.count("post") == 1
    replies = [text for kind, text, *_ in chat.calls if kind == "reply"]
    assert replies[0].startswith("RolloutStarted:")
    assert replies[-1].startswith("Promoted:")
    assert {ref for kind, _, ref, _ in chat.calls if kind != "post"} == {"ts1"}


def test_chat_failing_throughout_changes_nothing_of_the_rollout() -> None:
    plain = _phases(Harness(_notified()), 20)
    harness = Harness(_notified())
    chat = ScriptedChat(errors=[ChatError("ratelimited", retry_after=0.01)] * 1000)
    outbox = _with_chat(harness, chat)
    try:
        assert _phases(harness, 20) == plain
    finally:
        outbox.stop(1)


def test_a_publisher_that_raises_never_breaks_the_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = Harness(_notified())
    outbox = _with_chat(harness, ScriptedChat())
    outbox.stop(1)
    assert harness.reconciler.chat is not None

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(harness.reconciler.chat, "_publish", broken)
    assert _phases(harness, 20)[-1] is Phase.SUCCEEDED


def test_chat_problems_reach_the_observation(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = Harness(_notified())
    outbox = _with_chat(harness, ScriptedChat())
    outbox.stop(1)
    harness.store.chat_providers.clear()
    seen: list[tuple[str, ...]] = []
    decide = reconcile.decide

    def spy(spec: Any, status: Any, observation: Any, now: Any) -> Any:
        seen.append(observation.chat_problems)
        return decide(spec, status, observation, now)

    monkeypatch.setattr(reconcile, "decide", spy)
    _phases(harness, 2)
    assert seen[-1] == ("spec.notifications[0]: ChatProvider team not found in shop",)
