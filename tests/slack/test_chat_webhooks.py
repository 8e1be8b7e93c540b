"""The two message-only backends: a Slack-compatible incoming webhook (the local Slack's
`/services/...`, through slack-sdk's WebhookClient) and a generic JSON webhook (a local sink):
one message per subscribed event, their payloads, and their errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from canary.engine.actions import Notify
from tests.slack.chat_world import NS, ChatWorld, notified
from tests.slack.server import SlackServer
from tests.slack.webapi import INCOMING
from tests.unit.controller.chat.samples import REVISION, check, spec, status

STARTED = Notify("RolloutStarted", "rolling out v2 in place of v1")
ROLLED_BACK = Notify("RolledBack", "rolled back: request-success-rate failed", warning=True)


class Sink:
    """A JSON webhook receiver on a free loopback port: records what arrives, answers with the
    statuses scripted (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                with sink.lock:
                    sink.received.append((body, dict(self.headers)))
                    status, headers = sink.answers.pop(0) if sink.answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/rollouts"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Sink:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


@pytest.fixture
def world(slack: SlackServer, sink: Sink) -> Iterator[ChatWorld]:
    made = ChatWorld(slack)
    made.secrets.values[(NS, "relay", "token")] = "relay-secret-value"
    made.add("hook", {"slackWebhook": {"url": {"name": "slack", "key": "webhook"}}})
    made.add(
        "relay",
        {
            "webhook": {
                "url": sink.url,
                "headers": [
                    {
                        "name": "X-Relay-Token",
                        "valueFrom": {"secretKeyRef": {"name": "relay", "key": "token"}},
                    }
                ],
            },
            "channel": "#rollouts",
        },
    )
    made.outbox.start()
    try:
        yield made
    finally:
        made.outbox.stop(2.0)


def test_incoming_webhook_one_message_per_event(world: ChatWorld, slack: SlackServer) -> None:
    canary = notified(spec(), [{"provider": "hook", "events": ["started", "rolledBack"]}])
    world.publish(canary, status(phase="Initializing"), STARTED)
    world.publish(canary, status(canaryWeight=20), Notify("StepStarted", "step 1/2: weight 20"))
    failed = status(phase="Failed", canaryWeight=0, checks=[check(91.0, "fail")])
    world.publish(canary, failed, ROLLED_BACK)
    world.settle()
    first, second = slack.incoming()
    assert first["text"] == ("accounts (shop) RolloutStarted: rolling out v2 in place of v1")
    assert first["blocks"][0]["type"] == "section"
    assert second["text"].splitlines()[1] == (
        "Failed: request-success-rate was 91, needs >= 99. See `canary explain accounts -n shop`"
    )
    assert world.count("hook", "sent") == 2
    # No Web API call: an incoming webhook neither updates nor threads.
    assert slack.requests("chat.postMessage") == []


def test_incoming_webhook_429_and_unknown_url(world: ChatWorld, slack: SlackServer) -> None:
    slack.rate_limit(retry_after=1, calls=1, methods={INCOMING})
    canary = notified(spec(), [{"provider": "hook"}])
    world.publish(canary, status(phase="Initializing"), STARTED)
    world.settle()
    first, second = slack.requests(INCOMING)
    assert second.at - first.at >= 1.0
    assert len(slack.incoming()) == 1

    world.secrets.values[(NS, "slack", "webhook")] = slack.base + "/services/T0/B0/revoked"
    world.add("gone", {"slackWebhook": {"url": {"name": "slack", "key": "webhook"}}})
    world.publish(notified(spec(), [{"provider": "gone"}]), status(phase="Initializing"), STARTED)
    world.settle()
    assert world.count("gone", "dropped") == 1
    assert world.count("gone", "retried") == 0
    (line,) = world.problems()
    assert line == ("ChatProvider gone: incoming webhook: HTTP 404 no_service; 1 message dropped")
    assert "revoked" not in line


def test_json_webhook_payload(world: ChatWorld, sink: Sink) -> None:
    canary = notified(spec(), [{"provider": "relay"}])
    world.publish(canary, status(phase="Initializing"), STARTED)
    failed = status(phase="Failed", canaryWeight=0, checks=[check(91.0, "fail")])
    world.publish(canary, failed, ROLLED_BACK)
    world.settle()
    (started, headers), (rolled, _) = sink.received
    assert headers["X-Relay-Token"] == "relay-secret-value"
    assert headers["Content-Type"] == "application/json"
    assert started == {
        "canary": "accounts",
        "namespace": "shop",
        "event": "started",
        "reason": "RolloutStarted",
        "message": "rolling out v2 in place of v1",
        "phase": "Initializing",
        "weight": 20,
        "step": 1,
        "steps": 2,
        "revision": REVISION,
        "channel": "#rollouts",
        "text": "accounts (shop) RolloutStarted: rolling out v2 in place of v1",
    }
    assert rolled["event"] == "rolledBack"
    assert "canary explain accounts -n shop" in rolled["text"]


def test_json_webhook_retries_503_refuses_redirects(world: ChatWorld, sink: Sink) -> None:
    sink.answers = [(503, {}), (429, {"Retry-After": "1"}), (200, {})]
    canary = notified(spec(), [{"provider": "relay", "events": ["started"]}])
    started = time.monotonic()
    world.publish(canary, status(phase="Initializing"), STARTED)
    assert time.monotonic() - started < 0.1
    world.settle()
    assert len(sink.received) == 3
    assert world.count("relay", "retried") == 2
    assert world.count("relay", "sent") == 1

    sink.answers = [(302, {"Location": "http://127.0.0.1:1/elsewhere"})]
    world.publish(canary, status(phase="Initializing", revision="rev2"), STARTED)
    world.settle()
    assert len(sink.received) == 4
    assert world.count("relay", "dropped") == 1
    assert world.problems() == (
        "ChatProvider relay: JSON webhook: HTTP 302 ok for #rollouts; 1 message dropped",
    )
