"""The chat adapters alone against the local Slack: each answer translated into a ChatError of
the right kind (retry after, permanent, retryable), and no call waiting longer than its bound."""

from __future__ import annotations

import time

import pytest

from canary.adapters.chat_webhooks import IncomingWebhookChat, JsonWebhookChat
from canary.adapters.slack.web import SlackChat
from canary.errors import ChatError
from canary.ports import ChatMessage
from tests.slack.server import SlackServer

CHANNEL = "C0ROLLOUT"


def _bot(slack: SlackServer, token: str | None = None, timeout: int = 5) -> SlackChat:
    return SlackChat(token or slack.workspace.bot_token, api_url=slack.url, timeout=timeout)


def _error(call: object) -> ChatError:
    with pytest.raises(ChatError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_post_update_reply_ephemeral_and_groups(slack: SlackServer) -> None:
    chat = _bot(slack)
    blocks = ({"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}},)
    ts = chat.post("#rollouts", ChatMessage("hello", blocks))
    chat.post(CHANNEL, ChatMessage("a reply"), thread=ts)
    chat.update(CHANNEL, ts, ChatMessage("hello again"))
    root, reply = slack.messages(CHANNEL)
    assert (root.ts, root.text, root.updates, root.blocks) == (ts, "hello again", 1, [])
    assert reply.thread_ts == ts
    chat.ephemeral(CHANNEL, "U0MALLORY", "not allowed")
    assert slack.ephemerals()[0]["text"] == "not allowed"
    assert chat.group_members("S0OWNERS") == frozenset({"U0ALICE", "U0BOB"})
    assert chat.threads


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.post("#nowhere", ChatMessage("x")), "channel_not_found"),
        (lambda c: c.update(CHANNEL, "1.000009", ChatMessage("x")), "message_not_found"),
        (lambda c: c.group_members("S0NOPE"), "no_such_subteam"),
        (lambda c: c.ephemeral(CHANNEL, "U0NOPE", "x"), "user_not_in_channel"),
    ],
)
def test_refusals_are_permanent(slack: SlackServer, call: object, code: str) -> None:
    error = _error(lambda: call(_bot(slack)))  # type: ignore[operator]
    assert error.permanent
    assert code in str(error)


def test_bad_tokens_are_permanent_and_never_said(slack: SlackServer) -> None:
    for token in ("xoxb-wrong-secret", slack.workspace.app_token):
        error = _error(lambda t=token: _bot(slack, t).post(CHANNEL, ChatMessage("x")))
        assert error.permanent
        assert token not in str(error)


def test_rate_limit_server_error_slow_and_down_are_retryable(slack: SlackServer) -> None:
    chat = _bot(slack, timeout=1)
    slack.rate_limit(retry_after=7, calls=1)
    started = time.monotonic()
    limited = _error(lambda: chat.post(CHANNEL, ChatMessage("x")))
    assert time.monotonic() - started < 0.5  # no SDK handler waited the 7 s
    assert (limited.retry_after, limited.permanent) == (7.0, False)

    slack.fail(503, calls=1)
    failed = _error(lambda: chat.post(CHANNEL, ChatMessage("x")))
    assert (failed.retry_after, failed.permanent, str(failed)) == (
        None,
        False,
        "chat.postMessage: HTTP 503",
    )

    slack.slow(3.0)
    started = time.monotonic()
    slow = _error(lambda: chat.post(CHANNEL, ChatMessage("x")))
    assert time.monotonic() - started < 2.0
    assert not slow.permanent
    assert "timed out" in str(slow)
    slack.heal()

    slack.down()
    down = _error(lambda: chat.post(CHANNEL, ChatMessage("x")))
    assert (down.permanent, str(down)) == (
        False,
        "chat.postMessage: Slack unreachable (connection refused)",
    )


def test_webhook_chats_neither_update_nor_list(slack: SlackServer) -> None:
    for chat in (IncomingWebhookChat(slack.webhook_url), JsonWebhookChat(slack.base + "/x")):
        assert not chat.threads
        for call in (
            lambda c=chat: c.update(CHANNEL, "1.1", ChatMessage("x")),
            lambda c=chat: c.ephemeral(CHANNEL, "U0ALICE", "x"),
            lambda c=chat: c.group_members("S0OWNERS"),
        ):
            assert _error(call).permanent


def test_incoming_webhook_errors(slack: SlackServer) -> None:
    hook = IncomingWebhookChat(slack.webhook_url, timeout=1)
    assert hook.post("", ChatMessage("hello")) == ""
    assert slack.incoming() == [{"text": "hello"}]
    slack.fail(500, calls=1)
    assert not _error(lambda: hook.post("", ChatMessage("x"))).permanent
    slack.down()
    unreachable = _error(lambda: hook.post("", ChatMessage("x")))
    assert not unreachable.permanent
    assert slack.workspace.webhook_path not in str(unreachable)
