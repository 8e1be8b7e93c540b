"""The demo app answers as its command line says: its version, its error rate, its latency."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

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
