"""The Socket Mode hub keeps one connection per Slack app in use, in step with the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from canary.controller.clicks import Clicks, ProviderKey
from canary.controller.socket_hub import SocketHub
from canary.fakes import FakeSecrets
from canary.ports import CanaryKey, StoredCanary
from tests import clickworld as w


@dataclass
class _Link:
    app_token: str
    api_url: str
    name: str
    on_click: Callable[[Mapping[str, Any]], None]
    events: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.events.append("start")

    def close(self, timeout: float = 5.0) -> None:
        self.events.append("close")


@dataclass
class _Links:
    made: list[_Link] = field(default_factory=list)

    def __call__(
        self,
        *,
        app_token: str,
        api_url: str,
        name: str,
        on_click: Callable[[Mapping[str, Any]], None],
    ) -> _Link:
        link = _Link(app_token, api_url, name, on_click)
        self.made.append(link)
        return link


def test_one_link_per_app_opened_and_closed_with_the_store() -> None:
    store = w.store()
    secrets = w.secrets()
    # A second team in another namespace uses the same Slack app (same token and URL).
    other = CanaryKey("payments", "api")
    store.stored[other] = replace(store.stored[w.KEY], key=other)
    store.chat_providers[("payments", w.PROVIDER)] = w.provider()
    secrets.values.update({("payments", "slack", k): v for (_, _, k), v in secrets.values.items()})
    links = _Links()
    hub = SocketHub(
        store=store, secrets=secrets, clicks=Clicks(store=store, chats=None), links=links
    )

    hub.sync()
    hub.sync()
    [link] = links.made
    assert (link.app_token, link.events) == (w.APP_TOKEN, ["start"])
    assert hub.apps() == {
        "payments/slack-team,shop/slack-team": frozenset(
            {ProviderKey("payments", w.PROVIDER), ProviderKey("shop", w.PROVIDER)}
        )
    }

    # A click on that one connection decides for a Canary of either team.
    link.on_click(w.click())
    assert store.stored[w.KEY].command is not None

    del store.stored[w.KEY]
    hub.sync()
    assert link.events == ["start"]  # still used by payments
    del store.stored[other]
    hub.sync()
    assert link.events == ["start", "close"]
    assert hub.apps() == {}


def test_no_app_token_no_link_and_a_missing_secret_is_skipped() -> None:
    store = w.store()
    links = _Links()
    hub = SocketHub(
        store=store, secrets=FakeSecrets(), clicks=Clicks(store=store, chats=None), links=links
    )
    hub.sync()
    assert links.made == []
    store.chat_providers[(w.KEY.namespace, w.PROVIDER)] = w.provider(app_token=False)
    hub = SocketHub(
        store=store, secrets=w.secrets(), clicks=Clicks(store=store, chats=None), links=links
    )
    hub.sync()
    assert links.made == []


def test_stop_closes_every_link_and_a_stopped_hub_opens_none() -> None:
    store = w.store()
    links = _Links()
    hub = SocketHub(
        store=store,
        secrets=w.secrets(),
        clicks=Clicks(store=store, chats=None),
        links=links,
        interval=0.01,
    )
    hub.start()
    hub.stop()
    assert [link.events for link in links.made] == [["start", "close"]]
    hub.sync()
    assert len(links.made) == 1


def test_a_spec_that_does_not_parse_is_no_app() -> None:
    store = w.store()
    store.stored[w.KEY] = StoredCanary(key=w.KEY, spec=None, status=w.waiting())
    links = _Links()
    SocketHub(
        store=store, secrets=w.secrets(), clicks=Clicks(store=store, chats=None), links=links
    ).sync()
    assert links.made == []
