"""The outbox with a scripted Chat: order per message, coalescing, bounds, pauses, health."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from canary.controller.chat.outbox import Outbox, Thread
from canary.errors import ChatError
from canary.ports import ChatMessage

WAIT = 5.0


@dataclass
class ScriptedChat:
    """Answers each call with the next scripted error (None: success); records the calls."""

    threads: bool = True
    errors: list[ChatError | None] = field(default_factory=list)
    calls: list[tuple[str, str, str, float]] = field(default_factory=list)  # kind, text, ref, at
    gate: threading.Event = field(default_factory=threading.Event)
    counter: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    def _answer(self, kind: str, text: str, ref: str) -> None:
        assert self.gate.wait(WAIT)
        self.calls.append((kind, text, ref, time.monotonic()))
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error

    def post(self, channel: str, message: ChatMessage, *, thread: str = "") -> str:
        self._answer("reply" if thread else "post", message.text, thread)
        self.counter += 1
        return f"ts{self.counter}"

    def update(self, channel: str, ref: str, message: ChatMessage) -> None:
        self._answer("update", message.text, ref)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        raise ChatError("no", permanent=True)

    def group_members(self, group: str) -> frozenset[str]:
        raise ChatError("no", permanent=True)


class Counts:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, provider: str, result: str) -> None:
        self.seen.append((provider, result))

    def of(self, result: str) -> int:
        return sum(1 for _, r in self.seen if r == result)


@pytest.fixture
def counts() -> Counts:
    return Counts()


def _outbox(counts: Counts, **options: float) -> Iterator[Outbox]:
    box = Outbox(count=counts, backoff=0.01, backoff_max=0.05, **options)  # type: ignore[arg-type]
    box.start()
    try:
        yield box
    finally:
        box.stop(1.0)


@pytest.fixture
def outbox(counts: Counts) -> Iterator[Outbox]:
    yield from _outbox(counts)


def _put(box: Outbox, chat: ScriptedChat, text: str, kind: str = "post", **kw: object) -> bool:
    return box.enqueue(
        provider=str(kw.get("provider", "shop/slack")),
        canary="shop/accounts",
        lane=str(kw.get("lane", "shop/accounts#0")),
        chat=chat,
        channel="#rollouts",
        message=ChatMessage(text),
        kind=kind,  # type: ignore[arg-type]
        thread=kw.get("thread"),  # type: ignore[arg-type]
    )


def test_updates_wait_for_their_post_and_coalesce(outbox: Outbox, counts: Counts) -> None:
    chat = ScriptedChat()
    chat.gate.clear()  # the post hangs until released
    thread = Thread()
    _put(outbox, chat, "v1", thread=thread)
    time.sleep(0.05)  # the worker has the post in flight
    for text in ("v2", "v3", "v4"):
        _put(outbox, chat, text, "update", thread=thread)
    _put(outbox, chat, "step 2", "reply", thread=thread)
    _put(outbox, chat, "v5", "update", thread=thread)
    chat.gate.set()
    assert outbox.wait_idle(WAIT)
    # v2..v4 became v4 (the reply behind them keeps its place); each uses the post's ts.
    assert [(k, t, r) for k, t, r, _ in chat.calls] == [
        ("post", "v1", ""),
        ("update", "v4", "ts1"),
        ("reply", "step 2", "ts1"),
        ("update", "v5", "ts1"),
    ]
    assert thread.ref == "ts1"
    assert counts.of("sent") == 4


def test_a_full_queue_drops_at_once_and_never_blocks(counts: Counts) -> None:
    for box in _outbox(counts, capacity=3):
        chat = ScriptedChat()
        chat.gate.clear()
        started = time.monotonic()
        taken = [_put(box, chat, f"m{i}", lane=f"lane{i}") for i in range(6)]
        assert time.monotonic() - started < 0.1
        # One in flight still counts as queued until it is settled.
        assert taken.count(False) == 3
        assert counts.of("dropped") == 3
        assert box.problems("shop/accounts") == (
            "ChatProvider slack: the chat queue is full for #rollouts; 3 messages dropped",
        )
        chat.gate.set()
        assert box.wait_idle(WAIT)
        assert counts.of("sent") == 3
        # A message that went through clears the provider's health.
        assert box.problems("shop/accounts") == ()


def test_retry_then_sent_and_permanent_dropped_at_once(outbox: Outbox, counts: Counts) -> None:
    chat = ScriptedChat(errors=[ChatError("HTTP 500"), None])
    _put(outbox, chat, "hello")
    assert outbox.wait_idle(WAIT)
    assert (counts.of("retried"), counts.of("sent")) == (1, 1)

    refused = ScriptedChat(
        errors=[ChatError("chat.postMessage: channel_not_found", permanent=True)]
    )
    thread = Thread()
    _put(outbox, refused, "root", thread=thread, lane="other")
    _put(outbox, refused, "r1", "reply", thread=thread, lane="other")
    assert outbox.wait_idle(WAIT)
    assert len(refused.calls) == 1  # not retried; its reply had nowhere to go
    assert thread.lost
    assert counts.of("dropped") == 2
    assert outbox.problems("shop/accounts") == (
        "ChatProvider slack: chat.postMessage: channel_not_found for #rollouts; 2 messages dropped",
    )


def test_bounded_attempts(counts: Counts) -> None:
    for box in _outbox(counts, attempts=3):
        chat = ScriptedChat(errors=[ChatError("down")] * 10)
        _put(box, chat, "x")
        assert box.wait_idle(WAIT)
        assert len(chat.calls) == 3
        assert (counts.of("retried"), counts.of("dropped")) == (2, 1)
        assert "down" in box.problems("shop/accounts")[0]


def test_bounded_age(counts: Counts) -> None:
    for box in _outbox(counts, attempts=1000, max_age=0.3):
        chat = ScriptedChat(errors=[ChatError("down")] * 1000)
        started = time.monotonic()
        _put(box, chat, "x")
        assert box.wait_idle(WAIT)
        assert time.monotonic() - started < 1.0
        assert counts.of("dropped") == 1


def test_a_429_pauses_its_provider_only(outbox: Outbox, counts: Counts) -> None:
    limited = ScriptedChat(errors=[ChatError("ratelimited", retry_after=0.4)])
    other = ScriptedChat()
    _put(outbox, limited, "a1", lane="a")
    time.sleep(0.05)
    _put(outbox, limited, "a2", lane="b")  # same provider, another lane: paused too
    _put(outbox, other, "o1", lane="c", provider="shop/hook")
    assert outbox.wait_idle(WAIT)
    first = limited.calls[0][3]
    retried = [at for kind, text, _, at in limited.calls if text == "a1"][1]
    a2 = next(at for _, text, _, at in limited.calls if text == "a2")
    assert retried - first >= 0.4
    assert a2 - first >= 0.4
    assert other.calls[0][3] - first < 0.3


def test_stop_is_bounded_with_a_call_hanging(counts: Counts) -> None:
    box = Outbox(count=counts)
    box.start()
    chat = ScriptedChat()
    chat.gate.clear()
    _put(box, chat, "x")
    time.sleep(0.05)
    started = time.monotonic()
    box.stop(0.2)
    assert time.monotonic() - started < 0.5
    chat.gate.set()
    # The released call ends the worker (it was told to stop): nothing outlives the test.
    assert box._thread is not None
    box._thread.join(WAIT)
    assert not box._thread.is_alive()


def test_a_message_that_cannot_be_updated_is_lost(outbox: Outbox, counts: Counts) -> None:
    chat = ScriptedChat(errors=[None, ChatError("chat.update: message_not_found", permanent=True)])
    thread = Thread()
    _put(outbox, chat, "v1", thread=thread)
    _put(outbox, chat, "v2", "update", thread=thread)
    assert outbox.wait_idle(WAIT)
    assert thread.lost  # the publisher posts a new message at the next change
    assert len(outbox.problems("shop/accounts")) == 1
    # A notification removed from the spec leaves no problem behind.
    outbox.retain("shop/accounts", {("shop/slack", "#elsewhere")})
    assert outbox.problems("shop/accounts") == ()
