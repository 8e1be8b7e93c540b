"""The Jaeger adapter against a scripted HTTP server: the answers a real Jaeger gives rarely
(garbage, errors, a trickle) and how each becomes a sample or Unavailable. The real Jaeger's
answers are tested in tests/e2e/jaeger/."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from canary.adapters.jaeger import JaegerTraces
from canary.errors import Unavailable
from canary.ports import SpanQuery

NOW = datetime.now(UTC).replace(microsecond=0)
Reply = Callable[[BaseHTTPRequestHandler], None]


class Scripted(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.reply: Reply = lambda handler: None
        self.asked: list[dict[str, list[str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.asked.append(parse_qs(urlsplit(self.path).query))
                server.reply(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    thread = threading.Thread(target=scripted.serve_forever, daemon=True)
    thread.start()
    yield scripted
    scripted.shutdown()
    scripted.server_close()
    thread.join(timeout=5)


def send(status: int, body: bytes) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


def query(**overrides: Any) -> SpanQuery:
    values: dict[str, Any] = {
        "service": "shop",
        "operation": "POST /checkout",
        "tags": {"subset": "v2"},
        "start": NOW - timedelta(minutes=1),
        "end": NOW,
        "limit": 2,
        "timeout": 2.0,
        **overrides,
    }
    return SpanQuery(**values)


def span(trace: str, operation: str, seconds_ago: float, duration_us: int, **tags: Any) -> Any:
    start = int((NOW - timedelta(seconds=seconds_ago)).timestamp() * 1_000_000)
    return {
        "traceID": trace,
        "spanID": f"{trace}-{operation}",
        "operationName": operation,
        "startTime": start,
        "duration": duration_us,
        "processID": "p1",
        "tags": [{"key": key, "type": "string", "value": value} for key, value in tags.items()],
    }


def trace(trace_id: str, *spans: Any, service: str = "shop") -> Any:
    return {
        "traceID": trace_id,
        "spans": list(spans),
        "processes": {"p1": {"serviceName": service}},
    }


def test_only_the_spans_that_match_themselves_are_kept(server: Scripted) -> None:
    answer = {
        "data": [
            trace(
                "a1",
                span("a1", "POST /checkout", 10, 250_000, subset="v2"),
                span("a1", "GET /browse", 10, 9_000, subset="v2"),
                span("a1", "POST /checkout", 10, 7_000, subset="v1"),
                span("a1", "POST /checkout", 120, 7_000, subset="v2"),
            ),
            trace("b2", span("b2", "POST /checkout", 5, 3_000, subset="v2", error=True)),
        ],
        "errors": None,
    }
    server.reply = send(200, json.dumps(answer).encode())
    sample = JaegerTraces(f"http://127.0.0.1:{server.server_port}").spans(query())
    assert [(one.trace_id, one.duration_ms, one.error) for one in sample.spans] == [
        ("a1", 250.0, False),
        ("b2", 3.0, True),
    ]
    assert sample.traces == 2
    assert sample.truncated
    (asked,) = server.asked
    assert asked["service"] == ["shop"]
    assert asked["operation"] == ["POST /checkout"]
    assert json.loads(asked["tags"][0]) == {"subset": "v2"}
    assert asked["limit"] == ["2"]
    assert int(asked["end"][0]) - int(asked["start"][0]) == 60_000_000


def test_a_span_of_another_service_is_not_judged(server: Scripted) -> None:
    answer = {
        "data": [trace("c3", span("c3", "POST /checkout", 3, 1_000, subset="v2"), service="x")]
    }
    server.reply = send(200, json.dumps(answer).encode())
    sample = JaegerTraces(f"http://127.0.0.1:{server.server_port}").spans(query())
    assert sample.spans == ()
    assert not sample.truncated


def test_no_data_at_all_is_an_empty_sample(server: Scripted) -> None:
    server.reply = send(200, b'{"data": null, "total": 0, "limit": 0, "offset": 0, "errors": null}')
    sample = JaegerTraces(f"http://127.0.0.1:{server.server_port}").spans(query())
    assert (sample.spans, sample.traces, sample.truncated) == ((), 0, False)


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (500, b'{"data":null,"errors":[{"code":500,"msg":"storage down"}]}', "answered 500"),
        (200, b'{"data":null,"errors":[{"code":400,"msg":"bad tags"}]}', "answered errors"),
        (200, b"<html>a proxy's login page</html>", "answered no JSON"),
        (200, b'["not", "an", "object"]', "no JSON object"),
        (200, b'{"data": {"spans": []}}', "`data` is not a list"),
        (200, b'{"data": [{"traceID": "x"}]}', "without a list of spans"),
        (200, b'{"data": [{"spans": [{"operationName": "POST /checkout"}]}]}', "a span without"),
    ],
)
def test_garbage_is_unavailable_never_a_sample(
    server: Scripted, status: int, body: bytes, said: str
) -> None:
    server.reply = send(status, body)
    with pytest.raises(Unavailable, match=said):
        JaegerTraces(f"http://127.0.0.1:{server.server_port}").spans(query())


def test_an_answer_that_trickles_past_the_timeout_is_unavailable(server: Scripted) -> None:
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        # Each byte comes well within a read timeout, the whole answer never within the query's.
        for _ in range(40):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)

    server.reply = trickle
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"no full answer within 0\.5s"):
        JaegerTraces(f"http://127.0.0.1:{server.server_port}").spans(query(timeout=0.5))
    assert time.monotonic() - started < 2.0


def test_nobody_listening_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="connection refused"):
        JaegerTraces("http://127.0.0.1:9").spans(query())
