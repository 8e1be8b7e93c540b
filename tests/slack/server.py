"""A local Slack on 127.0.0.1: the Web API under `/api/` and Socket Mode under `/link/`, on one
free port, served by aiohttp on an event loop in a thread of the test process (so a test flips
a fault or reads what was recorded without any IPC).

    with SlackServer() as slack:
        client = WebClient(token=slack.workspace.bot_token, base_url=slack.url)

An incoming webhook answers at `webhook_url` (`/services/...`).

Faults a test switches on at runtime: `rate_limit` (429 + Retry-After), `fail` (500), `slow`
(a delay before each answer), `down`/`up` (the port stops listening and every WebSocket drops).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from canary.localmesh import procs
from tests.slack.socketmode import SocketMode
from tests.slack.state import Fault, Message, Recorded, Store, Workspace
from tests.slack.webapi import api_handler, incoming_webhook_handler, response_url_handler

T = TypeVar("T")
CALL_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class SlackServer:
    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = workspace or Workspace()
        self.store = Store(self.workspace)
        self.port = procs.free_port()
        self._socket_mode = SocketMode(self.store)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="local-slack", daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The `base_url` for slack-sdk's clients (it must end with a slash: the SDK urljoins)."""
        return self.base + "/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base}/actions/{name}"

    @property
    def webhook_url(self) -> str:
        """The workspace's incoming webhook."""
        return f"{self.base}/services/{self.workspace.webhook_path}"

    # Lifecycle.
    def start(self) -> SlackServer:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def down(self) -> None:
        """Slack unreachable: the port refuses connections and every WebSocket is dropped."""
        self._call(self._down())

    def up(self) -> None:
        self._call(self._listen())

    def __enter__(self) -> SlackServer:
        return self.start()

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    # Faults.
    def rate_limit(
        self, retry_after: int = 1, calls: int | None = None, methods: set[str] | None = None
    ) -> None:
        self.store.set_fault(Fault(429, retry_after, calls, _frozen(methods)))

    def fail(
        self, status: int = 500, calls: int | None = None, methods: set[str] | None = None
    ) -> None:
        self.store.set_fault(Fault(status, None, calls, _frozen(methods)))

    def slow(self, seconds: float) -> None:
        with self.store.lock:
            self.store.delay = seconds

    def heal(self) -> None:
        """Clears every fault (a server that is down stays down: call `up`)."""
        self.store.set_fault(None)
        self.slow(0.0)

    # What was received.
    def requests(self, method: str | None = None) -> list[Recorded]:
        return self.store.requests(method)

    def messages(self, channel: str) -> list[Message]:
        return self.store.messages(channel)

    def ephemerals(self) -> list[dict[str, Any]]:
        return self.store.ephemerals()

    def received(self) -> list[dict[str, Any]]:
        """Every frame a Socket Mode client sent (acks carry `envelope_id`)."""
        return self.store.received()

    def incoming(self) -> list[dict[str, Any]]:
        """What the incoming webhook took."""
        return self.store.incoming()

    def responses(self) -> list[dict[str, Any]]:
        """What was POSTed to a `response_url`."""
        return self.store.responses()

    # Socket Mode.
    def send_interactive(self, payload: dict[str, Any]) -> str:
        return self._call(self._socket_mode.send_interactive(payload))

    def disconnect(self, reason: str = "refresh_requested") -> int:
        return self._call(self._socket_mode.send_disconnect(reason))

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> None:
        self.store.wait_for(f"ack of {envelope_id}", lambda: self.store.acked(envelope_id), timeout)

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        """Until `count` Socket Mode connections were opened since start (not all still open)."""
        self.store.wait_for(
            f"{count} connections",
            lambda: self.store.opened_at_least(count),
            timeout,
        )

    def open_connections(self) -> int:
        return self._call(_count(self._socket_mode))

    # The loop thread.
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", api_handler(self.store, lambda: self.base))
        app.router.add_get("/link/", self._socket_mode.handle)
        app.router.add_post("/actions/{name}", response_url_handler(self.store))
        app.router.add_post("/services/{path:.*}", incoming_webhook_handler(self.store))
        # A short shutdown: a request a test left sleeping in `slow` must not hold stop() up.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        if self._site is None and self._runner is not None:
            self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            await self._site.start()

    async def _down(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await self._socket_mode.close_all()

    async def _stop(self) -> None:
        await self._socket_mode.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self._site = None


async def _count(socket_mode: SocketMode) -> int:
    return len(socket_mode.open)


def _frozen(methods: set[str] | None) -> frozenset[str] | None:
    return None if methods is None else frozenset(methods)
