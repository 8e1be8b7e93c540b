"""The local Slack as the real slack-sdk clients see it: WebClient posts, updates and gets each
error and fault; SocketModeClient connects, acks an interactive envelope and reconnects after a
`disconnect`; signed interaction payloads check out (or not) with slack-sdk's own verifier."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.error import URLError
from urllib.parse import parse_qs, urlencode

import pytest
import websocket
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from tests.slack import signing
from tests.slack.server import SlackServer

CHANNEL = "C0ROLLOUT"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def bot(slack: SlackServer, **kwargs: Any) -> WebClient:
    return WebClient(token=slack.workspace.bot_token, base_url=slack.url, **kwargs)


def api_error(call: Callable[[], object]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def test_post_reply_and_update_in_place(slack: SlackServer) -> None:
    client = bot(slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "weight 10%"}}]
    first = client.chat_postMessage(channel="#rollouts", text="podinfo: started", blocks=blocks)
    assert first["channel"] == CHANNEL
    reply = client.chat_postMessage(channel=CHANNEL, text="step 1", thread_ts=first["ts"])
    updated = client.chat_update(channel=CHANNEL, ts=first["ts"], text="podinfo: weight 20%")
    assert updated["ts"] == first["ts"]

    root, threaded = slack.messages(CHANNEL)
    assert (root.text, root.updates, root.blocks) == ("podinfo: weight 20%", 1, blocks)
    assert (threaded.ts, threaded.thread_ts) == (reply["ts"], first["ts"])
    assert float(threaded.ts) > float(root.ts)
    # What the SDK sent: the token as a Bearer header, chat.* as JSON.
    sent = slack.requests("chat.postMessage")[0]
    assert sent.headers["Authorization"] == f"Bearer {slack.workspace.bot_token}"
    assert sent.headers["Content-Type"].startswith("application/json")
    assert sent.params["blocks"] == blocks


def test_ephemeral_usergroups_and_auth(slack: SlackServer) -> None:
    client = bot(slack)
    answer = client.chat_postEphemeral(channel=CHANNEL, user="U0MALLORY", text="not allowed")
    assert slack.ephemerals()[0]["user"] == "U0MALLORY"
    assert slack.ephemerals()[0]["ts"] == answer["message_ts"]
    assert client.usergroups_users_list(usergroup="S0OWNERS")["users"] == ["U0ALICE", "U0BOB"]
    assert client.auth_test()["user_id"] == slack.workspace.bot_user_id
    # usergroups.users.list goes form-encoded, not as JSON.
    sent = slack.requests("usergroups.users.list")[0]
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_form_encoded_with_the_token_in_the_body(slack: SlackServer) -> None:
    # What a caller without the SDK sends (curl, a relay): Slack takes the token in the form too.
    # (Given params={"token": ...}, the SDK itself moves it into the Authorization header.)
    blocks = [{"type": "divider"}]
    form = {"token": slack.workspace.bot_token, "channel": CHANNEL, "text": "t"}
    body = urlencode({**form, "blocks": json.dumps(blocks)}).encode()
    with urllib.request.urlopen(slack.url + "chat.postMessage", body, timeout=5) as answer:
        assert json.load(answer)["ok"]
    assert slack.messages(CHANNEL)[0].blocks == blocks
    sent = slack.requests("chat.postMessage")[0]
    assert "Authorization" not in sent.headers
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("token", "call", "expected"),
    [
        ("xoxb-wrong", lambda c: c.chat_postMessage(channel=CHANNEL, text="x"), "invalid_auth"),
        (None, lambda c: c.chat_postMessage(channel=CHANNEL, text="x"), "not_authed"),
        ("bot", lambda c: c.chat_postMessage(channel="C0NOPE", text="x"), "channel_not_found"),
        (
            "bot",
            lambda c: c.chat_update(channel=CHANNEL, ts="1.000001", text="x"),
            "message_not_found",
        ),
        (
            "bot",
            lambda c: c.chat_postEphemeral(channel=CHANNEL, user="U0NOPE", text="x"),
            "user_not_in_channel",
        ),
        ("bot", lambda c: c.usergroups_users_list(usergroup="S0NOPE"), "no_such_subteam"),
        (
            "bot",
            lambda c: c.apps_connections_open(app_token="xoxb-canary-test"),
            "not_allowed_token_type",
        ),
        ("app", lambda c: c.chat_postMessage(channel=CHANNEL, text="x"), "not_allowed_token_type"),
    ],
)
def test_errors_reach_the_sdk_as_slack_api_errors(
    slack: SlackServer, token: str | None, call: Callable[[WebClient], object], expected: str
) -> None:
    named = {"bot": slack.workspace.bot_token, "app": slack.workspace.app_token}
    client = WebClient(token=named.get(token or "", token), base_url=slack.url)
    err = api_error(lambda: call(client))
    assert (err.response.status_code, err.response["error"]) == (200, expected)
    assert slack.messages(CHANNEL) == []


def test_rate_limit_with_retry_after(slack: SlackServer) -> None:
    slack.rate_limit(retry_after=1, calls=1, methods={"chat.postMessage"})
    err = api_error(lambda: bot(slack).chat_postMessage(channel=CHANNEL, text="x"))
    assert (err.response.status_code, err.response["error"]) == (429, "ratelimited")
    assert err.response.headers["Retry-After"] == "1"

    # With the SDK's handler the same fault costs one wait of Retry-After (+ < 1 s jitter).
    slack.rate_limit(retry_after=1, calls=1)
    client = bot(slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    started = time.monotonic()
    client.chat_postMessage(channel=CHANNEL, text="after the wait")
    assert 1.0 <= time.monotonic() - started < 3.0
    assert [r.status for r in slack.requests("chat.postMessage")] == [429, 429, 200]
    assert len(slack.messages(CHANNEL)) == 1


def test_server_error_and_until_healed(slack: SlackServer) -> None:
    slack.fail(500)
    client = bot(slack)
    for _ in range(2):
        err = api_error(lambda: client.chat_postMessage(channel=CHANNEL, text="x"))
        assert err.response.status_code == 500
    slack.heal()
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"]


def test_slow_then_down_then_up(slack: SlackServer) -> None:
    slack.slow(1.0)
    with pytest.raises(TimeoutError):
        bot(slack, timeout=0.3, retry_handlers=[]).auth_test()
    slack.heal()

    slack.down()
    with pytest.raises(URLError) as refused:
        bot(slack).auth_test()
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    slack.up()
    assert bot(slack).auth_test()["ok"]


def test_response_url_records_what_is_posted(slack: SlackServer) -> None:
    url = slack.response_url("click-1")
    body = json.dumps({"replace_original": False, "text": "approved by <@U0ALICE>"}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200
    assert slack.responses() == [
        {
            "path": "/actions/click-1",
            "body": {"replace_original": False, "text": "approved by <@U0ALICE>"},
        }
    ]


@contextmanager
def socket_mode(
    slack: SlackServer, requests: list[SocketModeRequest]
) -> Iterator[SocketModeClient]:
    """The SDK's builtin Socket Mode client, acking every request it gets (as canary will)."""

    def on_request(client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        requests.append(request)
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    # ping_interval also paces the SDK's monitor, which reconnects a dropped session.
    client = SocketModeClient(
        app_token=slack.workspace.app_token,
        web_client=WebClient(base_url=slack.url),
        ping_interval=1,
    )
    client.socket_mode_request_listeners.append(on_request)
    try:
        client.connect()
        slack.wait_for_connections(1)
        yield client
    finally:
        # Takes up to the SDK's fixed 3 s receive timeout: its reader thread is in recv().
        client.close()


def click_on(slack: SlackServer, message_ts: str) -> dict[str, Any]:
    return signing.block_actions(
        user="U0ALICE",
        action_id="approve",
        value="podinfo/rev-2",
        channel=CHANNEL,
        message_ts=message_ts,
        response_url=slack.response_url("click-1"),
    )


def test_socket_mode_delivers_acks_and_reconnects(slack: SlackServer) -> None:
    requests: list[SocketModeRequest] = []
    with socket_mode(slack, requests):
        opened = slack.requests("apps.connections.open")
        assert opened[0].headers["Authorization"] == f"Bearer {slack.workspace.app_token}"

        post = bot(slack).chat_postMessage(channel=CHANNEL, text="approve podinfo?")
        click = click_on(slack, post["ts"])
        envelope = slack.send_interactive(click)
        slack.wait_for_ack(envelope)
        assert requests[0].type == "interactive"
        assert requests[0].payload["actions"][0]["value"] == "podinfo/rev-2"
        assert requests[0].payload["container"]["message_ts"] == post["ts"]

        # A disconnect makes the SDK fetch a new URL and open a second connection.
        assert slack.disconnect() == 1
        slack.wait_for_connections(2)
        assert len(slack.requests("apps.connections.open")) == 2
        again = slack.send_interactive(click)
        slack.wait_for_ack(again)
        assert [r.envelope_id for r in requests] == [envelope, again]


def test_socket_mode_comes_back_after_slack_was_down(slack: SlackServer) -> None:
    requests: list[SocketModeRequest] = []
    with socket_mode(slack, requests):
        slack.down()
        assert slack.open_connections() == 0
        # Long enough for the SDK's monitor (every ping_interval) to find the session dead and
        # be refused by apps.connections.open at least once: it must keep trying, not give up.
        time.sleep(1.5)
        assert len(slack.requests("apps.connections.open")) == 1  # a refused one never arrives
        slack.up()
        slack.wait_for_connections(2, timeout=8)
        envelope = slack.send_interactive(click_on(slack, "1.000001"))
        slack.wait_for_ack(envelope, timeout=8)
        assert [r.envelope_id for r in requests] == [envelope]


def test_a_socket_mode_url_is_good_for_one_connection(slack: SlackServer) -> None:
    url = WebClient(base_url=slack.url).apps_connections_open(app_token=slack.workspace.app_token)[
        "url"
    ]
    first = websocket.create_connection(url, timeout=5)
    try:
        assert json.loads(first.recv())["type"] == "hello"
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, timeout=5)
        assert refused.value.status_code == 401
    finally:
        first.close()


def test_signed_payloads_against_slack_sdks_verifier() -> None:
    now = 1_700_000_000.0
    verifier = SignatureVerifier(SECRET, clock=_FixedClock(now))
    click = signing.block_actions(
        user="U0ALICE",
        action_id="approve",
        value="v",
        channel=CHANNEL,
        message_ts="1.000001",
        response_url="http://127.0.0.1:1/actions/x",
    )

    good = signing.signed(click, SECRET, now)
    assert verifier.is_valid_request(good.body, good.headers)
    assert json.loads(parse_qs(good.body.decode())["payload"][0]) == click
    # A replay verifies again: refusing it is the receiver's job, not the signature's.
    assert verifier.is_valid_request(good.body, good.headers)

    assert not verifier.is_valid_request(*_parts(signing.forged(click, now)))
    assert not verifier.is_valid_request(*_parts(signing.stale(click, SECRET, now)))
    assert verifier.is_valid_request(*_parts(signing.stale(click, SECRET, now, age=299)))
    tampered = good.body.replace(b"approve", b"reject!")
    assert not verifier.is_valid_request(tampered, good.headers)


class _FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def _parts(request: signing.SignedRequest) -> tuple[bytes, dict[str, str]]:
    return request.body, request.headers
