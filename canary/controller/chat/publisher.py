"""`ChatPublisher`: after each tick, tell each of the Canary's notifications what happened.

For each `spec.notifications[]` entry: its ChatProvider is read through the Store (missing, a
backend this controller has no adapter for, a Secret missing: a problem line for the Canary's
condition, never an exception), the channel is the notification's or else the provider's, and
then:

- Slack's bot API (`Chat.threads`): one message per rollout, posted at the first event of a
  revision the notification subscribes to (or when an approval waits on a person), updated in
  place when its rendering changes (not on every tick), each subscribed event a reply in its
  thread; a new revision starts a new message.
- a webhook (no threads): one message per subscribed event.

Everything goes through the `Outbox`, so a tick never waits for chat, and `publish` never
raises into the tick.

Which message belongs to which rollout is kept in memory: a restarted controller (or a new
leader) posts a new message at the rollout's next event rather than updating the old one. Slack
could be asked for the old message (conversations.history), but that costs a rate-limited call
per Canary at every start, and a second message in the channel loses nothing: the buttons
carry the revision and gate they decide, so a click on either decides the same gate once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from canary.api.people import Notification
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus
from canary.controller.chat import events, render
from canary.controller.chat.outbox import Outbox, Thread
from canary.engine import conditions
from canary.engine.actions import Notify
from canary.errors import CanaryError, InvalidSpec
from canary.ports import CanaryKey, Chat, ChatMessage, Secrets, Store

log = structlog.get_logger("canary.chat")

# Makes the Chat of one backend sub-model, reading its credentials from the namespace's Secrets.
ChatFactory = Callable[[Any, str, Secrets], Chat]
# A Chat is rebuilt this often, so a rotated token or webhook URL is picked up.
CHAT_TTL = 60.0


@dataclass(eq=False)
class _Message:
    thread: Thread
    rendered: ChatMessage
    started: datetime | None


@dataclass(frozen=True)
class _Target:
    provider: str  # namespace/name
    chat: Chat
    channel: str


class ChatPublisher:
    def __init__(
        self,
        *,
        store: Store,
        secrets: Secrets,
        outbox: Outbox,
        factories: Mapping[type, ChatFactory],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.outbox = outbox
        self.factories = dict(factories)
        self._clock = clock
        self._lock = threading.Lock()
        self._chats: dict[tuple[str, str], tuple[Any, float, Chat]] = {}
        self._messages: dict[tuple[CanaryKey, int, str], _Message] = {}
        self._problems: dict[CanaryKey, tuple[str, ...]] = {}
        self._errors: dict[CanaryKey, str] = {}

    def publish(
        self,
        key: CanaryKey,
        spec: CanarySpec,
        status: CanaryStatus,
        notices: Sequence[Notify],
        *,
        now: datetime,
    ) -> None:
        """Queue what this tick has to say; never raises (a failure here is only logged)."""
        try:
            self._publish(key, spec, status, notices, now)
        except Exception as exc:
            # One traceback per distinct error (a bug met on every tick must not flood the log).
            described = f"{type(exc).__name__}: {exc}"
            if self._errors.get(key) != described:
                log.exception("chat.publish_failed")
            else:
                log.warning("chat.publish_failed_again", error=described)
            self._errors[key] = described
        else:
            self._errors.pop(key, None)

    def problems(self, key: CanaryKey) -> tuple[str, ...]:
        """Why the Canary's notifications are not getting through, one line each."""
        return self._problems.get(key, ()) + self.outbox.problems(_name(key))

    def forget(self, key: CanaryKey) -> None:
        """A deleted Canary: its messages and problems go."""
        with self._lock:
            for stale in [k for k in self._messages if k[0] == key]:
                del self._messages[stale]
        self._problems.pop(key, None)
        self._errors.pop(key, None)
        self.outbox.forget(_name(key))

    def _publish(
        self,
        key: CanaryKey,
        spec: CanarySpec,
        status: CanaryStatus,
        notices: Sequence[Notify],
        now: datetime,
    ) -> None:
        problems: list[str] = []
        targets: set[tuple[str, str]] = set()
        for index, notification in enumerate(spec.notifications):
            told = [
                (event, notice)
                for notice in notices
                if (event := events.event_of(notice.reason)) is not None
                and event in notification.events
            ]
            target = self._target(key, index, notification, problems)
            if target is None:
                continue
            targets.add((target.provider, target.channel))
            if target.chat.threads:
                self._threaded(
                    key, index, spec=spec, status=status, told=told, target=target, now=now
                )
                continue
            for event, notice in told:
                self._enqueue(
                    key, index, target, render.event_message(key, spec, status, notice, event)
                )
        if problems:
            self._problems[key] = tuple(problems)
        else:
            self._problems.pop(key, None)
        self._prune(key, status.revision, len(spec.notifications))
        self.outbox.retain(_name(key), targets)

    def _threaded(
        self,
        key: CanaryKey,
        index: int,
        *,
        spec: CanarySpec,
        status: CanaryStatus,
        told: Sequence[tuple[Any, Notify]],
        target: _Target,
        now: datetime,
    ) -> None:
        if not status.revision:
            return
        slot = (key, index, status.revision)
        with self._lock:
            message = self._messages.get(slot)
        started = _started(status, None if message is None else message.started)
        rendered = render.rollout(key, spec, status, started=started, now=now)
        fresh = message is None or message.thread.lost
        if fresh:
            if not told and render.awaiting(status) is None:
                return  # nothing this notification wants to hear yet
            if message is not None and not told and rendered == message.rendered:
                return  # lost and unchanged: posting it again would fail the same way
            message = _Message(Thread(), rendered, started)
            with self._lock:
                self._messages[slot] = message
            self._enqueue(key, index, target, rendered, thread=message.thread)
        elif message is not None and rendered != message.rendered:
            message.rendered = rendered
            self._enqueue(key, index, target, rendered, kind="update", thread=message.thread)
        for _, notice in told:
            assert message is not None
            self._enqueue(
                key, index, target, render.reply(notice), kind="reply", thread=message.thread
            )

    def _target(
        self, key: CanaryKey, index: int, notification: Notification, problems: list[str]
    ) -> _Target | None:
        name, where = notification.provider, f"spec.notifications[{index}]"
        try:
            provider = self.store.chat_provider(key.namespace, name)
        except CanaryError as exc:
            log.warning("chat.provider_unread", provider=name, error=str(exc))
            return None
        if provider is None:
            problems.append(f"{where}: ChatProvider {name} not found in {key.namespace}")
            return None
        channel = notification.channel or provider.spec.channel or ""
        if provider.spec.kind == "slack" and not channel:
            problems.append(
                f"{where}: no channel (set it here or in ChatProvider {name}'s spec.channel)"
            )
            return None
        try:
            chat = self._chat(key.namespace, name, provider.spec.backend)
        except InvalidSpec as exc:
            problems.extend(f"ChatProvider {name}: {problem}" for problem in exc.problems)
            return None
        except CanaryError as exc:
            log.warning("chat.provider_unavailable", provider=name, error=str(exc))
            return None
        return _Target(f"{key.namespace}/{name}", chat, channel)

    def _chat(self, namespace: str, name: str, backend: Any) -> Chat:
        now = self._clock()
        with self._lock:
            cached = self._chats.get((namespace, name))
        if cached is not None and cached[0] == backend and now - cached[1] < CHAT_TTL:
            return cached[2]
        factory = self.factories.get(type(backend))
        if factory is None:
            known = ", ".join(sorted(kind.__name__ for kind in self.factories)) or "none"
            raise InvalidSpec(
                f"backend {type(backend).__name__} has no adapter in this controller "
                f"(it has: {known})"
            )
        chat = factory(backend, namespace, self.secrets)
        with self._lock:
            self._chats[(namespace, name)] = (backend, now, chat)
        return chat

    def _enqueue(
        self,
        key: CanaryKey,
        index: int,
        target: _Target,
        message: ChatMessage,
        *,
        kind: Any = "post",
        thread: Thread | None = None,
    ) -> None:
        self.outbox.enqueue(
            provider=target.provider,
            canary=_name(key),
            lane=f"{_name(key)}#{index}",
            chat=target.chat,
            channel=target.channel,
            message=message,
            kind=kind,
            thread=thread,
        )

    def _prune(self, key: CanaryKey, revision: str, notifications: int) -> None:
        """Forget the messages of earlier revisions (and of notifications no longer there)."""
        with self._lock:
            stale = [
                slot
                for slot in self._messages
                if slot[0] == key and (slot[2] != revision or slot[1] >= notifications)
            ]
            for slot in stale:
                del self._messages[slot]


def _started(status: CanaryStatus, known: datetime | None) -> datetime | None:
    """When the rollout started: the Promoted condition turns Unknown then; once it has ended,
    what was seen while it ran."""
    for condition in status.conditions:
        if condition.type == conditions.PROMOTED and condition.status == "Unknown":
            return condition.last_transition_time
    return known


def _name(key: CanaryKey) -> str:
    return f"{key.namespace}/{key.name}"
