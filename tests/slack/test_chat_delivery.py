"""Chat delivery against the local Slack, through slack-sdk's real WebClient: one message per
rollout updated in place with its details in its thread, and Slack rate limiting, failing, down
or refusing, none of which ever makes the caller wait."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import structlog

from canary.api.people import APPROVE_ACTION
from canary.engine.actions import Notify
from tests.slack.chat_world import CHANNEL, KEY, ChatWorld, notified, slack_bot
from tests.slack.server import SlackServer
from tests.unit.controller.chat.samples import T0, approval, check, spec, status

STARTED = Notify("RolloutStarted", "rolling out v2 in place of v1")
STEP = Notify("StepStarted", "step 1/2: weight 20")
FAILED = Notify("MetricFailed", "request-success-rate at weight 20: 91 < 99", warning=True)


@pytest.fixture
def world(slack: SlackServer) -> Iterator[ChatWorld]:
    made = ChatWorld(slack)
    made.outbox.start()
    try:
        yield made
    finally:
        made.outbox.stop(2.0)


def _spec(**notification: object) -> object:
    return notified(spec(), [{"provider": "team-slack", "channel": "#rollouts", **notification}])


def test_one_message_per_rollout_updated_in_place(world: ChatWorld, slack: SlackServer) -> None:
    canary = _spec()
    # First tick of the revision: the message and the event in its thread.
    world.publish(canary, status(phase="Initializing"), STARTED, now=T0)
    world.settle()
    # A step: the same message updated, one reply.
    world.publish(canary, status(canaryWeight=20), STEP, now=T0 + timedelta(seconds=5))
    world.settle()
    # Nothing changed (within the same minute): no call at all.
    calls = len(slack.requests())
    world.publish(canary, status(canaryWeight=20), now=T0 + timedelta(seconds=30))
    world.settle()
    assert len(slack.requests()) == calls
    # A check failed and the rollout waits for an approval: updated (with the buttons), replied.
    waiting = status(
        canaryWeight=20,
        checks=[check(91.0, "fail")],
        approvals=[approval()],
        waitingFor="approval promotion",
    )
    world.publish(canary, waiting, FAILED, now=T0 + timedelta(minutes=2))
    world.settle()

    root, *replies = slack.messages(CHANNEL)
    assert root.thread_ts is None
    assert root.updates == 2
    assert root.text.startswith(
        "accounts (shop) · Progressing · weight 20% · step 1/2 · running 2m"
    )
    buttons = [b for b in root.blocks or [] if b["type"] == "actions"]
    assert buttons[0]["elements"][0]["action_id"] == APPROVE_ACTION
    assert [r.thread_ts for r in replies] == [root.ts] * 3
    assert [r.text for r in replies] == [
        "RolloutStarted: rolling out v2 in place of v1",
        "StepStarted: step 1/2: weight 20",
        ":warning: MetricFailed: request-success-rate at weight 20: 91 < 99",
    ]
    assert world.count("team-slack", "sent") == 6
    assert world.problems() == ()

    # A new revision: a new message, its own thread.
    world.publish(canary, status(phase="Initializing", revision="rev2"), STARTED)
    world.settle()
    roots = [m for m in slack.messages(CHANNEL) if m.thread_ts is None]
    assert len(roots) == 2
    assert roots[1].updates == 0
    assert slack.messages(CHANNEL)[-1].thread_ts == roots[1].ts


def test_only_subscribed_events(world: ChatWorld, slack: SlackServer) -> None:
    canary = _spec(events=["rolledBack"])
    world.publish(canary, status(phase="Initializing"), STARTED)
    world.publish(canary, status(canaryWeight=20), STEP)
    world.settle()
    assert slack.messages(CHANNEL) == []
    world.publish(canary, status(phase="RollingBack"), Notify("RollingBack", "rolling back"))
    world.settle()
    root, reply = slack.messages(CHANNEL)
    assert reply.thread_ts == root.ts
    assert reply.text == "RollingBack: rolling back"


def test_429_waits_for_retry_after(world: ChatWorld, slack: SlackServer) -> None:
    slack.rate_limit(retry_after=1, calls=1, methods={"chat.postMessage"})
    started = time.monotonic()
    world.publish(_spec(), status(phase="Initializing"), STARTED)
    assert time.monotonic() - started < 0.1
    world.settle()
    posts = slack.requests("chat.postMessage")
    assert [r.status for r in posts] == [429, 200, 200]
    assert posts[1].at - posts[0].at >= 1.0
    assert world.count("team-slack", "retried") == 1
    assert world.count("team-slack", "sent") == 2


def test_500_then_sent(world: ChatWorld, slack: SlackServer) -> None:
    slack.fail(500, calls=2)
    world.publish(_spec(), status(phase="Initializing"), STARTED)
    world.settle()
    assert [r.status for r in slack.requests("chat.postMessage")] == [500, 500, 200, 200]
    assert len(slack.messages(CHANNEL)) == 2
    assert world.count("team-slack", "retried") == 2
    assert world.problems() == ()


def test_slack_down_throughout(slack: SlackServer) -> None:
    world = ChatWorld(slack, attempts=3, max_age=2.0)
    world.outbox.start()
    try:
        slack.down()
        canary = _spec()
        slowest = 0.0
        for tick in range(20):
            started = time.monotonic()
            seen = status(canaryWeight=20, step=0, checks=[check(99.0 + tick / 100, "pass")])
            world.publish(canary, seen, STEP, now=T0 + timedelta(seconds=tick))
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.05
        world.settle()
        dropped = world.count("team-slack", "dropped")
        assert dropped >= 20
        assert world.count("team-slack", "sent") == 0
        (line,) = world.problems()
        assert line.startswith(
            "ChatProvider team-slack: chat.postMessage: Slack unreachable (connection refused) "
            "for #rollouts;"
        )
        assert line.endswith(f"{int(dropped)} messages dropped")
        # Back up: the next change posts a new message, which clears the problem.
        slack.up()
        world.publish(canary, status(canaryWeight=60, step=1), STEP)
        world.settle()
        assert len(slack.messages(CHANNEL)) == 2
        assert world.problems() == ()
    finally:
        world.outbox.stop(2.0)


@pytest.mark.parametrize(
    ("provider", "channel", "error"),
    [
        (slack_bot, "#rollouts", "invalid_auth"),
        (slack_bot, "#nowhere", "channel_not_found"),
    ],
)
def test_permanent_errors_drop_at_once(
    slack: SlackServer, provider: object, channel: str, error: str
) -> None:
    world = ChatWorld(slack)
    if error == "invalid_auth":
        world.add("team-slack", slack_bot(slack, key="wrong"))
    world.outbox.start()
    try:
        canary = notified(spec(), [{"provider": "team-slack", "channel": channel}])
        world.publish(canary, status(phase="Initializing"), STARTED)
        world.settle()
        assert len(slack.requests("chat.postMessage")) == 1
        assert world.count("team-slack", "dropped") == 2  # the post, and its reply with it
        assert world.count("team-slack", "retried") == 0
        assert world.problems() == (
            f"ChatProvider team-slack: chat.postMessage: {error} for {channel}; 2 messages dropped",
        )
    finally:
        world.outbox.stop(2.0)


def test_provider_problems_are_lines_not_exceptions(world: ChatWorld) -> None:
    world.add("no-channel", slack_bot(world.slack))
    world.add("no-secret", {"slack": {"token": {"name": "missing", "key": "token"}}})
    canary = notified(
        spec(),
        [
            {"provider": "nobody"},
            {"provider": "no-channel"},
            {"provider": "no-secret", "channel": "#rollouts"},
        ],
    )
    world.publish(canary, status(phase="Initializing"), STARTED)
    assert world.problems() == (
        "spec.notifications[0]: ChatProvider nobody not found in shop",
        "spec.notifications[1]: no channel (set it here or in ChatProvider no-channel's "
        "spec.channel)",
        "ChatProvider no-secret: Secret shop/missing has no key 'token'",
    )


def test_the_token_is_never_logged(slack: SlackServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world = ChatWorld(slack, attempts=2, max_age=1.0)
    world.add("bad-token", slack_bot(slack, key="wrong"))
    world.add("hook", {"slackWebhook": {"url": {"name": "slack", "key": "webhook"}}})
    canary = notified(
        spec(),
        [
            {"provider": "team-slack", "channel": "#rollouts"},
            {"provider": "bad-token", "channel": "#rollouts"},
            {"provider": "hook"},
        ],
    )
    world.outbox.start()
    try:
        with structlog.testing.capture_logs() as logged:
            world.publish(canary, status(phase="Initializing"), STARTED)
            world.settle()
            slack.rate_limit(retry_after=1, calls=1)
            world.publish(canary, status(canaryWeight=20), STEP)
            world.settle()
            slack.down()
            world.publish(canary, status(canaryWeight=60, step=1), STEP)
            world.settle()
            slack.up()
    finally:
        world.outbox.stop(2.0)
    everything = repr(logged) + caplog.text + repr(world.problems())
    assert "chat.dropped" in everything
    assert "chat.retrying" in everything
    for secret in (
        slack.workspace.bot_token,
        "xoxb-not-this-one",
        slack.workspace.webhook_path.rsplit("/", 1)[-1],
    ):
        assert secret not in everything
    assert KEY.name in repr(logged)
