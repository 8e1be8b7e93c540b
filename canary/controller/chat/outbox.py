"""The chat outbox: messages leave in the background, so a rollout never waits for chat.

A tick only enqueues (a lock held for a few list operations, never across I/O); one daemon
thread sends. The queue is bounded: when it is full a new message is dropped, counted and
logged, never waited for. Each message is tried a bounded number of times within a bounded age,
backing off between tries; a 429's `Retry-After` pauses that provider's messages (not the other
providers') until it has passed; a permanent error (a bad token, a missing channel) drops the
message at once. Every outcome is counted (`canary_notifications_total{provider,result}`:
sent, retried, dropped).

Order: jobs go in lanes (one per Canary and notification), and only a lane's head is sent, so
an update never overtakes the post whose reference (Slack's ts) it needs, and a reply never
precedes its thread. Later updates of one message waiting in a lane are coalesced to the latest
rendering. When a message's post is dropped, what waits behind it for that message is dropped
too (it has nowhere to go), and the publisher posts a new one at the next change.

Health, per Canary, provider and channel: the last error and how many messages were dropped,
as lines for the Canary's condition (`problems`), cleared by the next message that goes through.
A provider merely retrying (one 429, one 500) is not a problem until something is dropped or
the error is permanent.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from canary.errors import ChatError
from canary.ports import Chat, ChatMessage

log = structlog.get_logger("canary.chat")

Kind = Literal["post", "update", "reply"]
Counter = Callable[[str, str], None]

CAPACITY = 1000
ATTEMPTS = 6
MAX_AGE = 300.0
BACKOFF = 1.0
BACKOFF_MAX = 30.0
STOP_TIMEOUT = 5.0
# How often a full queue's drops are logged (the first, then every Nth): the count is in /metrics.
LOG_EVERY = 100
# An update or reply whose message's post was dropped: it has nowhere to go.
ORPHAN = "its message was never posted"


@dataclass(eq=False)
class Thread:
    """One posted message (and its thread): the reference its post got, or that it was lost."""

    ref: str = ""
    lost: bool = False


@dataclass(eq=False)
class Job:
    provider: str  # namespace/name of the ChatProvider: the metrics label, what a 429 pauses
    canary: str  # namespace/name
    lane: str
    chat: Chat
    channel: str
    message: ChatMessage
    kind: Kind
    thread: Thread | None
    enqueued: float
    attempts: int = 0
    not_before: float = 0.0


@dataclass
class _Health:
    error: str = ""
    permanent: bool = False
    dropped: int = 0


class Outbox:
    def __init__(
        self,
        *,
        capacity: int = CAPACITY,
        attempts: int = ATTEMPTS,
        max_age: float = MAX_AGE,
        backoff: float = BACKOFF,
        backoff_max: float = BACKOFF_MAX,
        count: Counter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.attempts = attempts
        self.max_age = max_age
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._count = count
        self._clock = clock
        self._cond = threading.Condition()
        self._lanes: dict[str, collections.deque[Job]] = {}
        self._size = 0
        self._inflight: Job | None = None
        self._paused: dict[str, float] = {}  # provider -> monotonic time its 429 ends
        self._health: dict[tuple[str, str, str], _Health] = {}
        self._full_drops = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    # The ticks' side: never blocks beyond a short lock.
    def enqueue(
        self,
        *,
        provider: str,
        canary: str,
        lane: str,
        chat: Chat,
        channel: str,
        message: ChatMessage,
        kind: Kind = "post",
        thread: Thread | None = None,
    ) -> bool:
        """Queue a message; False when the queue was full and it was dropped."""
        now = self._clock()
        job = Job(provider, canary, lane, chat, channel, message, kind, thread, now)
        with self._cond:
            queued = self._lanes.get(lane)
            if kind == "update" and queued:
                last = queued[-1]
                if last.kind == "update" and last.thread is thread and last is not self._inflight:
                    queued[-1] = job  # the latest rendering is all that matters
                    self._cond.notify_all()
                    return True
            if self._size >= self.capacity:
                self._full_drops += 1
                if self._full_drops % LOG_EVERY == 1:
                    log.warning(
                        "chat.queue_full",
                        provider=provider,
                        canary=canary,
                        capacity=self.capacity,
                        dropped=self._full_drops,
                    )
                self._dropped(job, "the chat queue is full", permanent=False)
                return False
            self._lanes.setdefault(lane, collections.deque()).append(job)
            self._size += 1
            self._cond.notify_all()
        return True

    def problems(self, canary: str) -> tuple[str, ...]:
        """Lines for the Canary's condition: each provider and channel that dropped messages or
        refuses them for good, since the last message that went through there."""
        with self._cond:
            found = [
                (provider, channel, health)
                for (who, provider, channel), health in self._health.items()
                if who == canary and (health.dropped or health.permanent)
            ]
        lines = []
        for provider, channel, health in sorted(found, key=lambda f: (f[0], f[1])):
            line = f"ChatProvider {provider.rsplit('/', 1)[-1]}: {health.error}"
            if channel:
                line += f" for {channel}"
            if health.dropped:
                plural = "message" if health.dropped == 1 else "messages"
                line += f"; {health.dropped} {plural} dropped"
            lines.append(line)
        return tuple(lines)

    def retain(self, canary: str, targets: set[tuple[str, str]]) -> None:
        """Forget the health of the Canary's (provider, channel) pairs no longer in its spec, so
        a notification removed or moved elsewhere leaves no problem behind."""
        with self._cond:
            for health_key in [k for k in self._health if k[0] == canary]:
                if (health_key[1], health_key[2]) not in targets:
                    del self._health[health_key]

    def forget(self, canary: str) -> None:
        with self._cond:
            for health_key in [k for k in self._health if k[0] == canary]:
                del self._health[health_key]

    def pending(self) -> int:
        with self._cond:
            return self._size

    def wait_idle(self, timeout: float) -> bool:
        """Until nothing is queued (True) or `timeout` passed (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._size:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    # The worker.
    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="chat-outbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the worker (bounded: a call in flight ends within its own timeout, and the
        thread is a daemon either way). What is still queued stays queued, unsent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        left = self.pending()
        if left:
            log.info("chat.unsent_at_stop", messages=left)

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next()
                while job is None:
                    if self._stopping:
                        return
                    self._cond.wait(self._wait())
                    job = self._next()
                if self._stopping:
                    return
                self._inflight = job
            error, ref = self._attempt(job)
            with self._cond:
                self._inflight = None
                self._settle(job, error, ref)
                self._cond.notify_all()

    def _next(self) -> Job | None:
        """The oldest lane head that may go now; heads too old are dropped on the way."""
        now = self._clock()
        best: Job | None = None
        for lane in list(self._lanes):
            queued = self._lanes[lane]
            while queued and now - queued[0].enqueued > self.max_age:
                head = queued[0]
                self._remove(head)
                self._dropped(head, "too old to send", permanent=False)
            if not queued:
                continue
            head = queued[0]
            if head.not_before > now or self._paused.get(head.provider, 0.0) > now:
                continue
            if best is None or head.enqueued < best.enqueued:
                best = head
        return best

    def _wait(self) -> float:
        """How long until some lane's head may go (at most a second: ages are checked too)."""
        now = self._clock()
        soonest = 1.0
        for queued in self._lanes.values():
            if queued:
                head = queued[0]
                ready = max(head.not_before, self._paused.get(head.provider, 0.0))
                soonest = min(soonest, max(0.01, ready - now))
        return soonest

    def _attempt(self, job: Job) -> tuple[ChatError | None, str]:
        thread = job.thread
        try:
            if job.kind == "post":
                return None, job.chat.post(job.channel, job.message)
            if thread is None or not thread.ref:
                # Behind its post in the lane, so that post was dropped.
                return ChatError(ORPHAN, permanent=True), ""
            if job.kind == "reply":
                job.chat.post(job.channel, job.message, thread=thread.ref)
            else:
                job.chat.update(job.channel, thread.ref, job.message)
            return None, ""
        except ChatError as exc:
            return exc, ""
        except Exception as exc:  # a bug in an adapter must not end the worker
            log.exception("chat.adapter_crashed", provider=job.provider)
            return ChatError(f"{type(exc).__name__}", permanent=True), ""

    def _settle(self, job: Job, error: ChatError | None, ref: str) -> None:
        health_key = (job.canary, job.provider, job.channel)
        if error is None:
            self._remove(job)
            if job.kind == "post" and job.thread is not None:
                job.thread.ref = ref
            self._health.pop(health_key, None)
            self._counted(job, "sent")
            log.debug("chat.sent", provider=job.provider, canary=job.canary, kind=job.kind)
            return
        job.attempts += 1
        now = self._clock()
        if error.retry_after is not None:
            delay = error.retry_after
            self._paused[job.provider] = max(self._paused.get(job.provider, 0.0), now + delay)
        else:
            delay = min(self.backoff_max, self.backoff * 2 ** (job.attempts - 1))
        if (
            error.permanent
            or job.attempts >= self.attempts
            or now + delay - job.enqueued > self.max_age
        ):
            self._remove(job)
            self._dropped(job, str(error), permanent=error.permanent)
            return
        job.not_before = now + delay
        health = self._health.setdefault(health_key, _Health())
        health.error = str(error)
        self._counted(job, "retried")
        log.info(
            "chat.retrying",
            provider=job.provider,
            canary=job.canary,
            kind=job.kind,
            error=str(error),
            attempt=job.attempts,
            after=round(delay, 3),
        )

    def _remove(self, job: Job) -> None:
        queued = self._lanes.get(job.lane)
        if queued and queued[0] is job:
            queued.popleft()
            self._size -= 1
            if not queued:
                del self._lanes[job.lane]

    def _dropped(self, job: Job, why: str, *, permanent: bool) -> None:
        if job.thread is not None and job.kind == "post" and not job.thread.ref:
            job.thread.lost = True
        if job.thread is not None and job.kind == "update" and permanent and why != ORPHAN:
            # The message cannot be updated (deleted, too old to edit): the publisher posts a
            # new one at the next change rather than failing every update the same way.
            job.thread.lost = True
        health = self._health.setdefault((job.canary, job.provider, job.channel), _Health())
        if why != ORPHAN or not health.error:
            # An orphan keeps the error that lost its message: that is the one to fix.
            health.error, health.permanent = why, permanent
        health.dropped += 1
        self._counted(job, "dropped")
        log.warning(
            "chat.dropped",
            provider=job.provider,
            canary=job.canary,
            kind=job.kind,
            channel=job.channel,
            error=why,
            attempts=job.attempts,
        )

    def _counted(self, job: Job, result: str) -> None:
        if self._count is not None:
            try:
                self._count(job.provider, result)
            except Exception:
                log.exception("chat.count_failed")
