"""The local Slack as a fixture, for any test that reaches it through slack-sdk (here, in
`canary run` or in the demo): with the proxy variables cleared, since slack-sdk reads them and
would send loopback traffic to a proxy (a child process inherits the cleared environment)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.slack.server import SlackServer

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackServer]:
    without_proxies(monkeypatch)
    with SlackServer() as server:
        yield server
