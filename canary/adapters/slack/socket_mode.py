"""Socket Mode: approval clicks over a WebSocket the controller opens to Slack, for clusters with
no public endpoint. slack-sdk's builtin `SocketModeClient` does the protocol (it asks
`apps.connections.open` for a URL with the app-level token, pings, and reconnects when Slack
says `disconnect` or the connection dies).

What this module adds around it:
- every envelope is acked at once, before anything is decided: Slack redelivers an envelope
  that is not acked within 3 s, and a click's work (a group lookup, an annotation write) may
  take longer than that when a backend is slow;
- the first connection is retried here with a capped backoff: the SDK's own reconnects start
  only once a first session was established, so a controller that started while Slack (or its
  network) was away would otherwise never connect;
- close is bounded: the SDK's reader sits in a blocking receive of up to 3 s, and its close
  waits for it; a controller stopping must not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from slack_sdk.socket_mode.builtin.client import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient

log = structlog.get_logger("canary.slack.socket_mode")

PING_SECONDS = 10.0
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 60.0
WEB_TIMEOUT_SECONDS = 10


class SocketModeLink:
    """One Socket Mode connection of one Slack app; `on_click` gets each `block_actions`
    payload, on one of the SDK's worker threads, after its envelope was acked.

    `name` says which ChatProviders the app serves, for the logs; the token is never logged.
    """

    def __init__(
        self,
        *,
        app_token: str,
        api_url: str,
        name: str,
        on_click: Callable[[Mapping[str, Any]], None],
        ping_interval: float = PING_SECONDS,
        first_retry: float = FIRST_RETRY_SECONDS,
    ) -> None:
        self.app_token = app_token
        self.api_url = api_url
        self.name = name
        self.on_click = on_click
        self.ping_interval = ping_interval
        self.first_retry = first_retry
        self._closing = threading.Event()
        self._client: SocketModeClient | None = None
        self._connector: threading.Thread | None = None

    def start(self) -> None:
        if self._client is not None:
            return
        client = SocketModeClient(
            app_token=self.app_token,
            web_client=WebClient(base_url=self.api_url, timeout=WEB_TIMEOUT_SECONDS),
            ping_interval=self.ping_interval,
            # Clicks are few; a small pool keeps the threads of many apps few too.
            concurrency=2,
        )
        client.socket_mode_request_listeners.append(self._on_request)
        self._client = client
        # Connecting asks Slack for a URL first: never on the caller's thread.
        self._connector = threading.Thread(
            target=self._connect, name=f"slack-socket-{self.name}", daemon=True
        )
        self._connector.start()

    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    def close(self, timeout: float = 5.0) -> None:
        """Stop; waits at most about `timeout` seconds (the SDK's threads finish on their own)."""
        self._closing.set()
        client, self._client = self._client, None
        if client is None:
            return
        closer = threading.Thread(target=client.close, name="slack-socket-close", daemon=True)
        closer.start()
        closer.join(timeout)
        log.info("socket_mode.closed", provider=self.name, waited=not closer.is_alive())

    def _connect(self) -> None:
        delay = self.first_retry
        while not self._closing.is_set():
            client = self._client
            if client is None:
                return
            try:
                client.connect()
            except Exception as exc:  # Slack away, or the token refused: try again later
                log.warning(
                    "socket_mode.connect_failed",
                    provider=self.name,
                    error=type(exc).__name__,
                    detail=_why(exc),
                    retry_in=delay,
                )
            else:
                log.info("socket_mode.connected", provider=self.name)
                return
            self._closing.wait(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        try:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        except Exception as exc:  # Slack will deliver it again; deciding twice decides once
            log.warning("socket_mode.ack_failed", provider=self.name, error=str(exc))
        payload = request.payload
        if request.type != "interactive" or not isinstance(payload, dict):
            return
        if payload.get("type") != "block_actions":
            return
        try:
            self.on_click(payload)
        except Exception:
            log.exception("socket_mode.click_failed", provider=self.name)


def _why(exc: Exception) -> str:
    """Slack's error code when it answered (invalid_auth...), else the exception's text."""
    response = getattr(exc, "response", None)
    try:
        code = response["error"] if response is not None else None
    except (KeyError, TypeError):
        code = None
    return str(code) if code else str(exc)[:200]
