"""What the local Slack keeps: the workspace a test declares, the messages posted into it, every
request it received, the faults a test switched on, and what came back over Socket Mode.

One lock guards it all, for the aiohttp loop thread writes while the test thread reads; a
condition lets a test wait (bounded) for an ack or a connection instead of sleeping.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Workspace:
    """The team a test talks to. Channels map id to name; Slack answers with ids."""

    bot_token: str = "xoxb-canary-test"
    app_token: str = "xapp-1-canary-test"
    team_id: str = "T0CANARY"
    app_id: str = "A0CANARY"
    bot_user_id: str = "U0CANARYBOT"
    bot_id: str = "B0CANARY"
    channels: dict[str, str] = field(default_factory=lambda: {"C0ROLLOUT": "rollouts"})
    users: tuple[str, ...] = ("U0ALICE", "U0BOB", "U0MALLORY")
    usergroups: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"S0OWNERS": ("U0ALICE", "U0BOB")}
    )
    # An incoming webhook's path under /services/ (its last part is the secret in Slack's URLs).
    webhook_path: str = "T0CANARY/B0CANARY/incomingsecret"

    def channel_id(self, given: str) -> str | None:
        """An id, or a name with or without '#', as chat.postMessage accepts either."""
        if given in self.channels:
            return given
        name = given.removeprefix("#")
        return next((cid for cid, n in self.channels.items() if n == name), None)


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived: the API method (or path), its parameters merged from the query,
    a form or a JSON body, its headers, and the HTTP status it was answered with."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int
    at: float


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[Any] | None
    thread_ts: str | None
    updates: int = 0

    def as_slack(self, bot_user_id: str, bot_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "user": bot_user_id,
            "bot_id": bot_id,
            "text": self.text,
            "ts": self.ts,
        }
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        return body


@dataclass
class Fault:
    """An answer forced on the next `calls` requests (None: until cleared) to `methods` (None:
    every Web API method)."""

    status: int
    retry_after: int | None
    calls: int | None
    methods: frozenset[str] | None

    def applies(self, method: str) -> bool:
        return self.methods is None or method in self.methods


class Store:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._messages: dict[str, list[Message]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._requests: list[Recorded] = []
        self._fault: Fault | None = None
        self.delay = 0.0
        self._tickets: dict[str, bool] = {}  # ticket -> used
        self._received: list[dict[str, Any]] = []  # every frame a Socket Mode client sent
        self._connections = 0
        self._responses: list[dict[str, Any]] = []  # what was POSTed to a response_url
        self._incoming: list[dict[str, Any]] = []  # what an incoming webhook took
        # Slack's ts is seconds.micro, unique per channel; a counter keeps them ordered and unique.
        self._seq = itertools.count(1)
        self._epoch = int(time.time())

    # Web API state, called with the lock held by the handlers.
    def next_ts(self) -> str:
        return f"{self._epoch}.{next(self._seq):06d}"

    def post(self, message: Message) -> None:
        self._messages.setdefault(message.channel, []).append(message)

    def find(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self._messages.get(channel, []) if m.ts == ts), None)

    def add_ephemeral(self, entry: dict[str, Any]) -> None:
        self._ephemerals.append(entry)

    def record(self, entry: Recorded) -> None:
        self._requests.append(entry)

    def take_fault(self, method: str) -> Fault | None:
        fault = self._fault
        if fault is None or not fault.applies(method):
            return None
        if fault.calls is not None:
            fault.calls -= 1
            if fault.calls <= 0:
                self._fault = None
        return fault

    def set_fault(self, fault: Fault | None) -> None:
        with self.lock:
            self._fault = fault

    def issue_ticket(self) -> str:
        ticket = f"t{next(self._seq)}"
        self._tickets[ticket] = False
        return ticket

    def use_ticket(self, ticket: str) -> bool:
        """A Socket Mode URL is good for one connection, as Slack's are."""
        with self.lock:
            if self._tickets.get(ticket) is not False:
                return False
            self._tickets[ticket] = True
            return True

    def note_connection(self) -> None:
        with self.changed:
            self._connections += 1
            self.changed.notify_all()

    def note_frame(self, frame: dict[str, Any]) -> None:
        with self.changed:
            self._received.append(frame)
            self.changed.notify_all()

    def note_response(self, body: dict[str, Any]) -> None:
        with self.changed:
            self._responses.append(body)
            self.changed.notify_all()

    def note_incoming(self, body: dict[str, Any]) -> None:
        with self.changed:
            self._incoming.append(body)
            self.changed.notify_all()

    # Reads for tests: copies, so a test never sees a list change under it.
    def incoming(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._incoming)

    def messages(self, channel: str) -> list[Message]:
        with self.lock:
            return copy.deepcopy(self._messages.get(channel, []))

    def ephemerals(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._ephemerals)

    def requests(self, method: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self._requests if method is None or r.method == method]

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._received)

    def responses(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._responses)

    def connections(self) -> int:
        with self.lock:
            return self._connections

    def wait_for(self, what: str, test: Any, timeout: float) -> None:
        """Blocks until `test()` (called with the lock held) is true, or raises after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not test():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"local Slack: no {what} within {timeout}s")
                self.changed.wait(left)

    # Tests for wait_for, called with the lock held.
    def opened_at_least(self, count: int) -> bool:
        return self._connections >= count

    def acked(self, envelope_id: str) -> bool:
        return any(f.get("envelope_id") == envelope_id for f in self._received)
