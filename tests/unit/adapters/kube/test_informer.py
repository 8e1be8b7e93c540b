"""The list-then-watch loop on a scripted API: pages, events, bookmarks, 410 Gone, errors.

The real API server's behaviour is proven in tests/e2e/kube; these pin the loop's reactions,
which a real server only shows under rare timing (a compacted etcd, a dropped connection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog
import structlog.testing

from canary.adapters.kube.informer import Informer
from canary.adapters.kube.rest import CANARY, Body
from canary.errors import Unavailable


def _obj(name: str, version: str) -> Body:
    return {"metadata": {"namespace": "shop", "name": name, "resourceVersion": version}}


class _Stream:
    def __init__(self, events: list[Body], then: Callable[[], None] | None = None) -> None:
        self.events = events
        self.then = then
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[Body]:
        yield from self.events
        if self.then is not None:
            self.then()
        # A quiet watch: block until closed, as a real one does until its timeout.
        self.closed.wait(5)

    def close(self) -> None:
        self.closed.set()


class ScriptedRest:
    def __init__(self, lists: list[list[Body]], watches: list[_Stream]) -> None:
        self.lists = lists
        self.watches = watches
        self.listed = 0
        self.watched_from: list[str] = []

    def get(self, path: str, **query: Any) -> Body:
        if query.get("continue") != "page2":
            self.listed += 1
        items = self.lists[min(self.listed, len(self.lists)) - 1]
        if query.get("continue") == "page2":
            return {"items": items[1:], "metadata": {"resourceVersion": "10"}}
        return {"items": items[:1], "metadata": {"resourceVersion": "10", "continue": "page2"}}

    def watch(self, path: str, *, resource_version: str, timeout_seconds: int) -> _Stream:
        self.watched_from.append(resource_version)
        if not self.watches:
            return _Stream([])
        return self.watches.pop(0)


def _eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def _run(rest: ScriptedRest) -> tuple[Informer, list[tuple[str, str]]]:
    informer = Informer(rest, CANARY)  # type: ignore[arg-type]
    changes: list[tuple[str, str]] = []
    informer.on_change(lambda kind, key: changes.append(key))
    informer.start()
    return informer, changes


def test_pages_then_events_then_resume_from_the_last_version() -> None:
    def fail() -> None:
        raise Unavailable("connection reset", retry_after=0)

    rest = ScriptedRest(
        lists=[[_obj("a", "5"), _obj("b", "6")]],
        watches=[
            _Stream(
                [
                    {"type": "MODIFIED", "object": _obj("a", "11")},
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
                    {"type": "DELETED", "object": _obj("b", "16")},
                ],
                then=fail,
            )
        ],
    )
    informer, changes = _run(rest)
    try:
        _eventually(lambda: informer.get("shop", "b") is None)
        assert informer.synced.is_set()
        # Two pages of the first list, then the watch from the list's version.
        assert rest.watched_from[0] == "10"
        assert _version(informer.get("shop", "a")) == "11"
        assert ("shop", "b") in changes
        # The broken connection means a fresh list after the backoff, then a new watch.
        _eventually(lambda: len(rest.watched_from) >= 2)
        assert rest.listed == 2
    finally:
        informer.stop()


def test_gone_relists_at_once_and_drops_what_the_list_no_longer_has() -> None:
    rest = ScriptedRest(
        lists=[[_obj("a", "5"), _obj("b", "6")], [_obj("a", "20")]],
        watches=[_Stream([{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}])],
    )
    informer, changes = _run(rest)
    try:
        # Listeners hear of a list's changes just after the cache holds them: wait for both.
        _eventually(lambda: changes.count(("shop", "b")) >= 2)
        assert informer.get("shop", "b") is None
        assert _version(informer.get("shop", "a")) == "20"
        assert informer.relists == 2
        assert changes.count(("shop", "b")) == 2  # added by the first list, gone after the second
    finally:
        informer.stop()


def test_an_echo_older_than_our_own_write_does_not_replace_it() -> None:
    rest = ScriptedRest(lists=[[_obj("a", "5")]], watches=[])
    informer = Informer(rest, CANARY)  # type: ignore[arg-type]
    informer.remember(_obj("a", "12"))
    informer.remember(_obj("a", "9"))
    assert _version(informer.get("shop", "a")) == "12"


class _CutOnClose(_Stream):
    """A watch whose read fails once its socket is closed, as urllib3's does mid-chunk."""

    def __iter__(self) -> Iterator[Body]:
        self.closed.wait(5)
        raise Unavailable("Response ended prematurely", retry_after=0)


def test_its_own_stop_is_not_logged_as_a_failed_watch() -> None:
    rest = ScriptedRest(lists=[[_obj("a", "5")]], watches=[_CutOnClose([])])
    with structlog.testing.capture_logs() as logs:
        informer, _ = _run(rest)
        _eventually(lambda: len(rest.watched_from) == 1)
        informer.stop()
    assert [line for line in logs if line["log_level"] == "warning"] == [], logs
    assert rest.listed == 1


def _version(body: Body | None) -> str:
    assert body is not None
    return str(body["metadata"]["resourceVersion"])
