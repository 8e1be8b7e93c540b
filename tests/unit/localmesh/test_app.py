"""The demo app answers as its command line says: its version, its error rate, its latency, its
operations (browse, checkout and the inventory checkout asks, in the same trace), a slow one."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from canary.localmesh import app, procs


@contextmanager
def serving(behaviour: app.Behaviour, *, seed: int = 7) -> Iterator[http.client.HTTPConnection]:
    server = app.DemoServer(procs.free_port(), behaviour, seed=seed)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        yield conn
    finally:
        conn.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _get(conn: http.client.HTTPConnection, path: str = "/") -> tuple[int, dict[str, str]]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_error_rate_is_honoured_over_500_requests() -> None:
    with serving(app.Behaviour(version="v2", error_rate=0.2)) as conn:
        statuses = [_get(conn)[0] for _ in range(500)]
    failures = statuses.count(503)
    # Binomial(500, 0.2): mean 100, sd ~9; five sd either way.
    assert 55 <= failures <= 145
    assert set(statuses) == {200, 503}


def test_every_answer_carries_the_version() -> None:
    with serving(app.Behaviour(version="v7", error_rate=0.5)) as conn:
        bodies = [_get(conn)[1] for _ in range(20)]
    assert {body["version"] for body in bodies} == {"v7"}


def test_latency_is_honoured() -> None:
    with serving(app.Behaviour(version="v1", latency_ms=50, latency_jitter_ms=10)) as conn:
        _get(conn)  # the connection is set up outside the measured requests
        started = time.monotonic()
        for _ in range(10):
            _get(conn)
        mean_ms = (time.monotonic() - started) * 100
    assert 45 <= mean_ms <= 80


def test_healthz_is_200_even_when_every_request_fails() -> None:
    with serving(app.Behaviour(version="v1", error_rate=1.0)) as conn:
        assert _get(conn)[0] == 503
        assert _get(conn, "/healthz")[0] == 200


@pytest.mark.parametrize(
    "arguments",
    [{"error_rate": 1.5}, {"error_rate": -0.1}, {"latency_ms": -1.0}],
)
def test_impossible_behaviour_is_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is the user's, tested by eye
        app.Behaviour(version="v1", **arguments)


def _call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object], float]:
    started = time.monotonic()
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, json.loads(response.read()), (time.monotonic() - started) * 1000


class _Inventory(BaseHTTPRequestHandler):
    """Stands in for the inbound Envoy in front of the app: records what checkout sent."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []  # noqa: RUF012 - one test's record, reset by it

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **dict(self.headers.items())})
        data = b'{"version": "v1", "stock": 3}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def inventory() -> Iterator[str]:
    _Inventory.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", procs.free_port()), _Inventory)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_browse_and_root_answer_with_the_version() -> None:
    with serving(app.Behaviour(version="v3")) as conn:
        assert _call(conn, "GET", "/browse")[:2] == (
            200,
            {"version": "v3", "items": ["tea", "cake"]},
        )
        assert _call(conn, "GET", "/")[:2] == (200, {"version": "v3"})


def test_checkout_asks_the_inventory_within_the_same_trace() -> None:
    trace = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "vendor=x",
        "x-request-id": "req-1",
    }
    with inventory() as url, serving(app.Behaviour(version="v1", inventory_url=url)) as conn:
        status, body, _ = _call(conn, "POST", "/checkout", b'{"items": ["tea"]}', trace)
        # The body was read: the kept-alive connection serves the next request.
        assert _call(conn, "GET", "/browse")[0] == 200
    assert (status, body) == (200, {"version": "v1", "order": "accepted"})
    (call,) = _Inventory.seen
    assert call["path"] == "/inventory"
    for name, value in trace.items():
        assert call[name] == value


def test_checkout_fails_when_its_inventory_does() -> None:
    behaviour = app.Behaviour(version="v1", inventory_url=f"http://127.0.0.1:{procs.free_port()}")
    with serving(behaviour) as conn:
        assert _call(conn, "POST", "/checkout", b"{}")[0] == 503


def test_only_the_slow_operation_is_slow() -> None:
    behaviour = app.Behaviour(version="v2", slow_path="/checkout", slow_ms=150, slow_rate=1.0)
    with serving(behaviour) as conn:
        _call(conn, "GET", "/browse")
        browse = max(_call(conn, "GET", "/browse")[2] for _ in range(5))
        checkout = min(_call(conn, "POST", "/checkout", b"{}")[2] for _ in range(3))
    assert browse < 100
    assert checkout >= 150


def test_the_slow_share_is_honoured_over_400_checkouts() -> None:
    behaviour = app.Behaviour(version="v2", slow_path="/checkout", slow_ms=20, slow_rate=0.1)
    with serving(behaviour) as conn:
        slow = sum(_call(conn, "POST", "/checkout", b"{}")[2] >= 20 for _ in range(400))
    # Binomial(400, 0.1): mean 40, sd 6; five sd either way.
    assert 10 <= slow <= 70


def test_an_unknown_post_is_404_and_inventory_is_cheap() -> None:
    with serving(app.Behaviour(version="v1", error_rate=1.0, latency_ms=200)) as conn:
        assert _call(conn, "POST", "/browse", b"{}")[0] == 404
        status, body, took = _call(conn, "GET", "/inventory")
    assert (status, body["stock"]) == (200, 7)
    assert took < 150


@pytest.mark.parametrize(
    "arguments",
    [{"slow_rate": 2.0}, {"slow_ms": -1.0}, {"slow_path": "checkout"}],
)
def test_an_impossible_slow_operation_is_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is the user's, tested by eye
        app.Behaviour(version="v1", **arguments)
