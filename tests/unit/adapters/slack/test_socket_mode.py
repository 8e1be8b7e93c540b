"""Socket Mode against the local Slack, with slack-sdk's own client: an envelope is acked and
its click becomes a command in the store; after a disconnect, and after Slack was away when
the controller started, clicks still arrive."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from canary.adapters.slack.socket_mode import SocketModeLink
from canary.api.chat_provider import ChatProvider
from canary.controller.clicks import Clicks
from canary.controller.socket_hub import Link, SocketHub
from canary.fakes import FakeStore
from canary.ports import Chat
from tests import clickworld as w
from tests.slack.server import SlackServer


def _links(
    *,
    app_token: str,
    api_url: str,
    name: str,
    on_click: Callable[[Mapping[str, Any]], None],
) -> Link:
    # Pings every second: the SDK's monitor, which notices a dead session, runs as often.
    return SocketModeLink(
        app_token=app_token,
        api_url=api_url,
        name=name,
        on_click=on_click,
        ping_interval=1,
        first_retry=0.2,
    )


@pytest.fixture
def world(slack: SlackServer) -> Iterator[tuple[SocketHub, FakeStore]]:
    store = w.store(api_url=slack.url)

    def chats(provider: ChatProvider) -> Chat:
        return w.WebChat(w.BOT_TOKEN, slack.url)

    hub = SocketHub(
        store=store,
        secrets=w.secrets(),
        clicks=Clicks(store=store, chats=chats),
        links=_links,
    )
    try:
        yield hub, store
    finally:
        started = time.monotonic()
        hub.stop(timeout=0.3)
        assert time.monotonic() - started < 3.0  # bounded, though the SDK's reader waits 3 s


def _command_written(store: FakeStore, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        command = store.stored[w.KEY].command
        if command is not None:
            return command.id
        time.sleep(0.02)
    raise AssertionError("no command written")


def test_a_click_over_socket_mode_is_acked_and_decided(
    slack: SlackServer, world: tuple[SocketHub, FakeStore]
) -> None:
    hub, store = world
    hub.sync()
    slack.wait_for_connections(1)
    assert slack.requests("apps.connections.open")[0].headers["Authorization"] == (
        f"Bearer {w.APP_TOKEN}"
    )
    envelope = slack.send_interactive(w.click(action_ts="1.1"))
    slack.wait_for_ack(envelope)
    first = _command_written(store)
    [told] = _ephemerals(slack, 1)
    assert told["user"] == "U0ALICE"
    assert told["text"].startswith("recorded: approve")

    # Slack recycles the connection: the SDK opens a new one and clicks keep coming (once the
    # old session's reader is out of its 3 s receive: slack-sdk reads one session at a time).
    assert slack.disconnect() == 1
    slack.wait_for_connections(2)
    store.stored[w.KEY] = replace(store.stored[w.KEY], command=None)
    again = slack.send_interactive(w.click(action_ts="1.2"))
    slack.wait_for_ack(again)
    assert _command_written(store) != first

    # Not an approver: acked all the same, told so, nothing written.
    store.stored[w.KEY] = replace(store.stored[w.KEY], command=None)
    refused = slack.send_interactive(w.click(user="U0MALLORY", action_ts="1.3"))
    slack.wait_for_ack(refused)
    assert "not allowed" in _ephemerals(slack, 3)[-1]["text"]
    assert store.stored[w.KEY].command is None


def test_slack_away_at_start_is_retried_and_a_removed_provider_disconnects(
    slack: SlackServer, world: tuple[SocketHub, FakeStore]
) -> None:
    hub, store = world
    slack.down()
    hub.sync()
    time.sleep(0.5)  # a first connect or two are refused
    slack.up()
    slack.wait_for_connections(1, timeout=5)
    envelope = slack.send_interactive(w.click())
    slack.wait_for_ack(envelope)
    _command_written(store)

    # Removed from the store: the hub lets go of it (the SDK's socket closes once its reader's
    # 3 s receive returns, which this test does not wait for).
    del store.stored[w.KEY]
    hub.sync()
    assert hub.apps() == {}


def _ephemerals(slack: SlackServer, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(found := slack.ephemerals()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return found
