"""`POST /slack/interactions` on the controller's real HTTP server, through a real HTTP client,
with payloads signed as Slack signs them: only a good, fresh, first-seen signature decides."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from canary.adapters.slack.signature import SlackSignatures
from canary.api.chat_provider import ChatProvider
from canary.controller.clicks import Clicks
from canary.controller.interactions import MAX_BODY, PATH, Interactions
from canary.controller.serve import HealthServer
from canary.fakes import FakeStore
from canary.ports import Chat
from tests import clickworld as w
from tests.slack import signing
from tests.slack.server import SlackServer


@dataclass
class Endpoint:
    server: HealthServer
    store: FakeStore
    slack: SlackServer

    def post(self, body: bytes, headers: dict[str, str], *, path: str = PATH) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()

    def send(self, request: signing.SignedRequest) -> tuple[int, str]:
        return self.post(request.body, request.headers)

    def command(self) -> dict[str, Any] | None:
        return w.command_of(self.store)

    def ephemerals(self, count: int) -> list[dict[str, Any]]:
        """The ephemerals the local Slack got, once `count` arrived (they follow the answer)."""
        deadline = time.monotonic() + 5
        while len(found := self.slack.ephemerals()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return found


@pytest.fixture
def endpoint(slack: SlackServer) -> Iterator[Endpoint]:
    store = w.store(api_url=slack.url)

    def chats(provider: ChatProvider) -> Chat:
        return w.WebChat(w.BOT_TOKEN, provider.spec.slack.api_url)  # type: ignore[union-attr]

    clicks = Clicks(store=store, chats=chats)
    route = Interactions(store=store, secrets=w.secrets(), clicks=clicks, verify=SlackSignatures())
    server = HealthServer(registry=CollectorRegistry(), alive=lambda: True, posts={PATH: route})
    with server:
        yield Endpoint(server, store, slack)


def test_a_signed_click_decides_and_the_person_is_told(endpoint: Endpoint) -> None:
    status, text = endpoint.send(signing.signed(w.click(), w.SIGNING_SECRET, time.time()))
    assert status == 200
    assert text.startswith("recorded: approve of shop/podinfo")
    command = endpoint.command()
    assert command is not None
    assert (command["by"], command["via"], command["gate"]) == ("U0ALICE", "slack", w.GATE)
    [told] = endpoint.ephemerals(1)
    assert (told["channel"], told["user"]) == (w.CHANNEL, "U0ALICE")
    assert told["text"].startswith("recorded: approve")


def test_an_unauthorised_signed_click_is_told_no(endpoint: Endpoint) -> None:
    status, text = endpoint.send(
        signing.signed(w.click(user="U0MALLORY"), w.SIGNING_SECRET, time.time())
    )
    assert status == 200
    assert "not allowed" in text
    assert endpoint.command() is None
    [told] = endpoint.ephemerals(1)
    assert told["user"] == "U0MALLORY"
    assert "not allowed" in told["text"]


@pytest.mark.parametrize(
    "request_",
    [
        signing.forged(w.click(), time.time()),
        signing.stale(w.click(), w.SIGNING_SECRET, time.time()),
        signing.stale(w.click(), w.SIGNING_SECRET, time.time(), age=-(signing.STALE_AFTER + 60)),
    ],
    ids=["forged", "stale", "from-the-future"],
)
def test_a_bad_signature_is_401_and_changes_nothing(
    endpoint: Endpoint, request_: signing.SignedRequest
) -> None:
    assert endpoint.send(request_)[0] == 401
    assert endpoint.command() is None
    assert endpoint.slack.requests() == []


def test_missing_or_mangled_signature_headers_are_401(endpoint: Endpoint) -> None:
    good = signing.signed(w.click(), w.SIGNING_SECRET, time.time())
    bare = {"Content-Type": "application/x-www-form-urlencoded"}
    assert endpoint.post(good.body, bare)[0] == 401
    mangled = {**good.headers, "X-Slack-Request-Timestamp": "soon"}
    assert endpoint.post(good.body, mangled)[0] == 401
    tampered = good.body.replace(b"U0ALICE", b"U0BOBBB")
    assert endpoint.post(tampered, good.headers)[0] == 401
    # slack-sdk cannot even sign a body that is not UTF-8: not Slack's, so unsigned.
    not_text = b"payload=\xff"
    now = int(time.time())
    signed = {
        **bare,
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": signing.signature(w.SIGNING_SECRET, now, not_text),
    }
    assert endpoint.post(not_text, signed)[0] == 401
    assert endpoint.command() is None


def test_a_replayed_request_decides_nothing_new(endpoint: Endpoint) -> None:
    request = signing.signed(w.click(), w.SIGNING_SECRET, time.time())
    assert endpoint.send(request)[0] == 200
    first = endpoint.command()
    assert endpoint.send(request) == (200, "already handled\n")
    assert endpoint.command() == first
    assert len(endpoint.ephemerals(1)) == 1


def test_a_body_over_the_bound_is_413_unread(endpoint: Endpoint) -> None:
    click = w.click()
    click["padding"] = "x" * MAX_BODY
    request = signing.signed(click, w.SIGNING_SECRET, time.time())
    assert len(request.body) > MAX_BODY
    assert endpoint.send(request)[0] == 413
    assert endpoint.command() is None


def test_a_signed_body_of_the_wrong_type_is_refused(endpoint: Endpoint) -> None:
    now = time.time()
    body = json.dumps({"payload": w.click()}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(int(now)),
        "X-Slack-Signature": signing.signature(w.SIGNING_SECRET, int(now), body),
    }
    assert endpoint.post(body, headers)[0] == 415
    assert endpoint.command() is None


@pytest.mark.parametrize(
    "body",
    [b"payload=not-json", b"payload=%5B1%2C2%5D", b"nothing=here", b"a=1&a", b""],
    ids=["not-json", "not-an-object", "no-payload", "not-a-form", "empty"],
)
def test_a_signed_body_that_is_no_payload_is_400(endpoint: Endpoint, body: bytes) -> None:
    now = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": signing.signature(w.SIGNING_SECRET, now, body),
    }
    assert endpoint.post(body, headers)[0] == 400
    assert endpoint.command() is None


def test_other_paths_are_not_found_and_probes_still_answer(endpoint: Endpoint) -> None:
    good = signing.signed(w.click(), w.SIGNING_SECRET, time.time())
    assert endpoint.post(good.body, good.headers, path="/slack/other")[0] == 404
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.server.port, timeout=5)
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200
    connection.close()


def test_no_content_length_is_411_and_a_short_body_400(endpoint: Endpoint) -> None:
    with socket.create_connection(("127.0.0.1", endpoint.server.port), timeout=5) as raw:
        raw.sendall(b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(64).startswith(b"HTTP/1.0 411")
    with socket.create_connection(("127.0.0.1", endpoint.server.port), timeout=5) as raw:
        head = b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        raw.sendall(head + b"payload=")
        raw.shutdown(socket.SHUT_WR)
        assert raw.recv(64).startswith(b"HTTP/1.0 400")
    assert endpoint.command() is None
