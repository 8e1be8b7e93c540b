"""One Socket Mode connection per Slack app that a Canary's notifications use with an app token,
kept in step with the store: opened as such a provider appears, closed when none uses it any
more or the controller stops.

Connections are per app token, not per ChatProvider. Slack spreads an app's envelopes over all
of its open connections, so two providers in two namespaces sharing one app would each receive
the other's clicks; one connection that knows every provider behind its token hands each click
to `Clicks` with all of them, and `Clicks` takes it only for a Canary one of them notifies.

The hub reads the store every `interval` seconds (the cache; no API request unless a Secret's
TTL ran out). The transport is a `Link` from the composition root (slack-sdk's Socket Mode
client in `adapters/slack/socket_mode.py`), since the controller never imports an adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog

from canary.controller.clicks import Clicks, ProviderKey, slack_providers
from canary.errors import CanaryError
from canary.ports import Secrets, Store

log = structlog.get_logger("canary.socket_hub")

SYNC_SECONDS = 10.0
CLOSE_SECONDS = 5.0


class Link(Protocol):
    def start(self) -> None: ...

    def close(self, timeout: float = CLOSE_SECONDS) -> None: ...


class LinkFactory(Protocol):
    def __call__(
        self,
        *,
        app_token: str,
        api_url: str,
        name: str,
        on_click: Callable[[Mapping[str, Any]], None],
    ) -> Link: ...


# An app as Slack knows it: where its Web API is, and its app-level token.
_App = tuple[str, str]


class SocketHub:
    def __init__(
        self,
        *,
        store: Store,
        secrets: Secrets,
        clicks: Clicks,
        links: LinkFactory,
        interval: float = SYNC_SECONDS,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.clicks = clicks
        self.links = links
        self.interval = interval
        self._lock = threading.Lock()
        self._links: dict[_App, Link] = {}
        self._providers: dict[_App, frozenset[ProviderKey]] = {}
        self._problems: dict[ProviderKey, str] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="slack-socket-hub", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = CLOSE_SECONDS) -> None:
        """Close every connection, together; waits at most about `timeout` seconds."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            links = list(self._links.values())
            self._links.clear()
            self._providers.clear()
        _close_all(links, timeout)

    def apps(self) -> dict[str, frozenset[ProviderKey]]:
        """The open connections by the providers they serve (names only), for tests and logs."""
        with self._lock:
            return {_name(keys): keys for keys in self._providers.values()}

    def sync(self) -> None:
        wanted = self._wanted()
        with self._lock:
            if self._stopping.is_set():
                return
            gone = [app for app in self._links if app not in wanted]
            closing = [self._links.pop(app) for app in gone]
            for app in gone:
                log.info("socket_hub.closing", providers=_name(self._providers.pop(app)))
            self._providers.update(wanted)
            new = [app for app in wanted if app not in self._links]
            for app in new:
                link = self.links(
                    app_token=app[1],
                    api_url=app[0],
                    name=_name(wanted[app]),
                    on_click=self._on_click(app),
                )
                self._links[app] = link
                log.info("socket_hub.opening", providers=_name(wanted[app]))
                link.start()
        # In the background: the sync (and the hub's lock) must not wait on Slack's client.
        for link in closing:
            threading.Thread(target=link.close, name="slack-socket-close", daemon=True).start()

    def _wanted(self) -> dict[_App, frozenset[ProviderKey]]:
        apps: dict[_App, set[ProviderKey]] = {}
        problems: dict[ProviderKey, str] = {}
        for key, provider in slack_providers(self.store).items():
            slack = provider.spec.slack
            if slack is None or slack.app_token is None:
                continue
            try:
                token = self.secrets.value(key.namespace, slack.app_token)
            except CanaryError as exc:
                problems[key] = str(exc)
                continue
            apps.setdefault((slack.api_url, token.strip()), set()).add(key)
        # Said once per problem, not every sync.
        for key, problem in problems.items():
            if self._problems.get(key) != problem:
                log.warning("socket_hub.no_app_token", provider=str(key), error=problem)
        self._problems = problems
        return {app: frozenset(keys) for app, keys in apps.items()}

    def _on_click(self, app: _App) -> Callable[[Mapping[str, Any]], None]:
        def on_click(payload: Mapping[str, Any]) -> None:
            with self._lock:
                providers = self._providers.get(app, frozenset())
            self.clicks.handle(payload, providers=providers)

        return on_click

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sync()
            except Exception:  # the next sync tries again; clicks already open keep coming
                log.exception("socket_hub.sync_failed")
            self._stopping.wait(self.interval)


def _close_all(links: list[Link], timeout: float) -> None:
    closers = [threading.Thread(target=link.close, args=(timeout,), daemon=True) for link in links]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(timeout + 1.0)


def _name(keys: frozenset[ProviderKey]) -> str:
    return ",".join(str(key) for key in sorted(keys))
