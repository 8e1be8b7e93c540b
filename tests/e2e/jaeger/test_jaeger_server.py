"""Jaeger v2 (tests/jaeger, v1.75.0) as canary's trace SLOs will meet it: spans sent over OTLP
come back from `/api/traces` and as span metrics, which a real Prometheus scrapes.

Jaeger starts once for the module (the `jaeger` fixture of tests/jaeger/fixtures.py); every test
sends spans of a service of its own, so the tests do not see each other's spans. What the
answers look like is Jaeger's query API (`GET /api/traces`: service required, operation, tags,
start/end in unix microseconds, limit) and the OpenTelemetry spanmetrics connector's series
(`traces_span_metrics_calls_total`, `traces_span_metrics_duration_milliseconds_bucket`).
"""

from __future__ import annotations

import os
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.samples import Sample

from canary.localmesh import jaeger as localjaeger
from canary.localmesh import procs
from tests.jaeger import query
from tests.jaeger.spans import Span, SpanKind, now_ns, send, server_span

SECOND_NS = 1_000_000_000
OPERATION = "GET /orders"


@pytest.fixture
def service() -> str:
    return f"orders-{secrets.token_hex(3)}"


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, as `ss -ltnp` shows them."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                if table == "tcp":
                    address = ".".join(str(b) for b in reversed(bytes.fromhex(address)))
                found.add((address, int(port, 16)))
    return found


def _port(address: str) -> int:
    return urllib.parse.urlsplit(f"//{address.removeprefix('http://')}").port or 0


def test_jaeger_listens_only_on_the_loopback_ports_it_was_given(
    jaeger: localjaeger.JaegerHandle,
) -> None:
    given = {
        ("127.0.0.1", _port(address))
        for address in (
            jaeger.query_url,
            jaeger.query_grpc,
            jaeger.otlp_http,
            jaeger.otlp_grpc,
            jaeger.metrics_address,
        )
    }
    assert _listening_ports(jaeger.process.pid) == given


def _spans_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for trace in answer["data"] for span in trace["spans"]]


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def test_spans_are_found_by_service_operation_and_tags(
    jaeger: localjaeger.JaegerHandle, service: str
) -> None:
    start = now_ns() - 30 * SECOND_NS
    v2_ok = server_span(
        service,
        OPERATION,
        duration_ms=12.5,
        start_ns=start,
        attributes={"subset": "v2", "http.status_code": 200},
    )
    v2_error = server_span(
        service,
        OPERATION,
        duration_ms=40,
        start_ns=start + SECOND_NS,
        error=True,
        attributes={"subset": "v2", "http.status_code": 500},
    )
    v1 = server_span(service, OPERATION, duration_ms=3, start_ns=start, attributes={"subset": "v1"})
    other_operation = server_span(
        service, "POST /orders", duration_ms=300, start_ns=start, attributes={"subset": "v2"}
    )
    send(jaeger.otlp_traces_url, [v2_ok, v2_error, v1, other_operation])

    status, answer = query.find_traces(
        jaeger.query_url,
        service=service,
        operation=OPERATION,
        tags={"subset": "v2"},
        start_us=start // 1000 - 1,
        end_us=now_ns() // 1000,
        limit=100,
    )

    assert status == 200
    assert answer["errors"] is None
    # The paging fields are always zero in this API.
    assert (answer["total"], answer["limit"], answer["offset"]) == (0, 0, 0)
    spans = {span["spanID"]: span for span in _spans_of(answer)}
    assert set(spans) == {v2_ok.span_id, v2_error.span_id}
    ok, error = spans[v2_ok.span_id], spans[v2_error.span_id]
    assert ok["traceID"] == v2_ok.trace_id
    assert ok["operationName"] == OPERATION
    assert ok["startTime"] == v2_ok.start_ns // 1000
    assert (ok["duration"], error["duration"]) == (12_500, 40_000)
    assert _tags(ok) == {
        "subset": "v2",
        "http.status_code": 200,
        "span.kind": "server",
        "otel.status_code": "OK",
        "otel.scope.name": "canary-tests",
    }
    # An error span carries `error: true` (type bool) besides its status.
    assert {"key": "error", "type": "bool", "value": True} in error["tags"]
    assert _tags(error)["otel.status_code"] == "ERROR"
    trace = next(t for t in answer["data"] if t["traceID"] == v2_ok.trace_id)
    assert trace["processes"][ok["processID"]]["serviceName"] == service


def test_tags_and_operation_must_match_one_span_and_whole_traces_come_back(
    jaeger: localjaeger.JaegerHandle, service: str
) -> None:
    server = server_span(service, OPERATION, duration_ms=20, attributes={"subset": "v2"})
    client = Span(
        service=service,
        name="SELECT orders",
        start_ns=server.start_ns + 1_000_000,
        end_ns=server.start_ns + 5_000_000,
        kind=SpanKind.CLIENT,
        trace_id=server.trace_id,
        parent_span_id=server.span_id,
        attributes={"db.system": "postgresql"},
    )
    send(jaeger.otlp_traces_url, [server, client])

    def found(**filters: Any) -> list[str]:
        status, answer = query.find_traces(jaeger.query_url, service=service, **filters)
        assert status == 200
        return sorted(span["spanID"] for span in _spans_of(answer))

    both = sorted([server.span_id, client.span_id])
    assert found(operation=OPERATION, tags={"subset": "v2"}) == both
    assert found(operation="SELECT orders", tags={"subset": "v2"}) == []
    assert found(tags={"subset": "v2", "db.system": "postgresql"}) == []


def test_limit_counts_the_traces_received_last(
    jaeger: localjaeger.JaegerHandle, service: str
) -> None:
    first = server_span(service, OPERATION, duration_ms=5, start_ns=now_ns() - 5 * SECOND_NS)
    second = server_span(service, OPERATION, duration_ms=5, start_ns=now_ns() - 10 * SECOND_NS)
    child = Span(
        service=service,
        name="child",
        start_ns=second.start_ns,
        end_ns=second.end_ns,
        trace_id=second.trace_id,
        parent_span_id=second.span_id,
    )
    # Separate requests: within one, Jaeger stores the traces in no particular order.
    send(jaeger.otlp_traces_url, [first])
    send(jaeger.otlp_traces_url, [second, child])

    status, answer = query.find_traces(jaeger.query_url, service=service, limit=1)

    # One trace (with both its spans): the one received last, though it started earlier.
    assert status == 200
    assert [trace["traceID"] for trace in answer["data"]] == [second.trace_id]
    assert len(answer["data"][0]["spans"]) == 2
    status, answer = query.find_traces(jaeger.query_url, service=service, limit=0)
    assert status == 500
    assert answer["data"] is None
    assert answer["errors"][0]["msg"] == (
        "search depth must be greater than 0 and less than max traces"
    )


def test_unknown_names_find_nothing_and_a_missing_service_is_a_400(
    jaeger: localjaeger.JaegerHandle, service: str
) -> None:
    send(jaeger.otlp_traces_url, [server_span(service, OPERATION, duration_ms=1)])

    assert query.find_traces(jaeger.query_url, service=f"{service}-unknown") == (
        200,
        {"data": [], "total": 0, "limit": 0, "offset": 0, "errors": None},
    )
    status, answer = query.find_traces(jaeger.query_url, service=service, operation="unknown")
    assert (status, answer["data"], answer["errors"]) == (200, [], None)
    status, answer = query.get_json(f"{jaeger.query_url}/api/traces", {"operation": OPERATION})
    assert status == 400
    assert answer["data"] is None
    assert answer["errors"] == [{"code": 400, "msg": "parameter 'service' is required"}]


def test_the_window_is_on_span_start_times_in_microseconds(
    jaeger: localjaeger.JaegerHandle, service: str
) -> None:
    now = now_ns()
    old = server_span(service, OPERATION, duration_ms=1, start_ns=now - 20 * SECOND_NS)
    new = server_span(service, OPERATION, duration_ms=1, start_ns=now - 10 * SECOND_NS)
    ancient = server_span(service, OPERATION, duration_ms=1, start_ns=now - 3 * 86400 * SECOND_NS)
    send(jaeger.otlp_traces_url, [old, new, ancient])

    def found(start_ns: int | None, end_ns: int | None) -> set[str]:
        status, answer = query.find_traces(
            jaeger.query_url,
            service=service,
            start_us=None if start_ns is None else start_ns // 1000,
            end_us=None if end_ns is None else end_ns // 1000,
        )
        assert (status, answer["errors"]) == (200, None)
        return {span["spanID"] for span in _spans_of(answer)}

    assert found(now - 15 * SECOND_NS, now) == {new.span_id}
    assert found(now - 25 * SECOND_NS, now - 15 * SECOND_NS) == {old.span_id}
    assert found(now + SECOND_NS, now + 2 * SECOND_NS) == set()
    assert found(now, now - 60 * SECOND_NS) == set()
    # Without a window: the last two days (an older span is only found by asking for it).
    assert found(None, None) == {old.span_id, new.span_id}
    assert ancient.span_id in found(now - 4 * 86400 * SECOND_NS, now)


def test_an_error_tag_filter_finds_ok_spans_not_errors(
    jaeger: localjaeger.JaegerHandle, service: str
) -> None:
    """v1.75.0's memory store reads the `error` tag as a bool, but the HTTP API hands it over
    as the string "true", which reads as false: both `true` and `false` find the spans whose
    status is OK. Errors have to be told from the spans' own tags."""
    ok = server_span(service, OPERATION, duration_ms=1)
    error = server_span(service, OPERATION, duration_ms=1, error=True)
    send(jaeger.otlp_traces_url, [ok, error])

    for value in ("true", "false"):
        status, answer = query.find_traces(jaeger.query_url, service=service, tags={"error": value})
        assert status == 200
        assert [span["spanID"] for span in _spans_of(answer)] == [ok.span_id]


def _calls(samples: list[Sample], service: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["status_code"], s.labels.get("subset", ""), s.labels["span_kind"]): s.value
        for s in samples
        if s.name == "traces_span_metrics_calls_total" and s.labels["service_name"] == service
    }


def test_span_metrics_carry_the_dimensions_as_labels(
    jaeger: localjaeger.JaegerHandle, service: str
) -> None:
    attributes = {"subset": "v2", "istio.canonical_revision": "orders-v2"}
    sent = [
        server_span(service, OPERATION, duration_ms=12.5, attributes=attributes),
        server_span(service, OPERATION, duration_ms=40, attributes=attributes),
        server_span(service, OPERATION, duration_ms=700, attributes=attributes, error=True),
        server_span(service, OPERATION, duration_ms=3, attributes={"subset": "v1"}),
    ]
    send(jaeger.otlp_traces_url, sent)

    samples = query.poll(
        "span metrics of 4 spans",
        lambda: (
            found
            if sum(_calls(found := query.span_metrics(jaeger.metrics_url), service).values()) == 4
            else None
        ),
        timeout=10.0,
    )

    assert _calls(samples, service) == {
        ("STATUS_CODE_OK", "v2", "SPAN_KIND_SERVER"): 2,
        ("STATUS_CODE_ERROR", "v2", "SPAN_KIND_SERVER"): 1,
        ("STATUS_CODE_OK", "v1", "SPAN_KIND_SERVER"): 1,
    }
    ok_v2 = {
        "service_name": service,
        "span_name": OPERATION,
        "span_kind": "SPAN_KIND_SERVER",
        "status_code": "STATUS_CODE_OK",
        "subset": "v2",
        "istio_canonical_revision": "orders-v2",
        "job": service,
        "otel_scope_name": "spanmetricsconnector",
        "otel_scope_schema_url": "",
        "otel_scope_version": "",
    }
    histogram = {
        s.labels["le"]: s.value
        for s in samples
        if s.name == "traces_span_metrics_duration_milliseconds_bucket"
        and {k: v for k, v in s.labels.items() if k != "le"} == ok_v2
    }
    assert histogram == {
        "2": 0,
        "5": 0,
        "10": 0,
        "25": 1,
        "50": 2,
        "100": 2,
        "250": 2,
        "500": 2,
        "1000": 2,
        "2500": 2,
        "5000": 2,
        "+Inf": 2,
    }
    total = {s.name: s.value for s in samples if s.labels == ok_v2}
    assert total["traces_span_metrics_duration_milliseconds_sum"] == 52.5
    assert total["traces_span_metrics_duration_milliseconds_count"] == 2


def test_prometheus_answers_the_rate_of_span_calls(
    jaeger: localjaeger.JaegerHandle, prometheus_url: str, service: str
) -> None:
    selector = f'traces_span_metrics_calls_total{{service_name="{service}",subset="v2"}}'

    def rate() -> list[dict[str, Any]] | None:
        send(
            jaeger.otlp_traces_url,
            [server_span(service, OPERATION, duration_ms=10, attributes={"subset": "v2"})],
        )
        status, answer = query.get_json(
            f"{prometheus_url}/api/v1/query", {"query": f"sum(rate({selector}[10s]))"}
        )
        assert (status, answer["status"]) == (200, "success")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result if result and float(result[0]["value"][1]) > 0 else None

    assert query.poll("a positive rate of span calls", rate, timeout=20.0, interval=0.5)
    # The scrape keeps its own job; the exporter's (the service name) becomes exported_job.
    status, answer = query.get_json(f"{prometheus_url}/api/v1/query", {"query": selector})
    assert status == 200
    labels = answer["data"]["result"][0]["metric"]
    assert labels["job"] == "jaeger"
    assert labels["exported_job"] == service
    assert labels["instance"] == jaeger.metrics_address


def test_start_and_stop_are_quick_and_leave_nothing(
    jaeger_binary: Path, tmp_path: Path, service: str
) -> None:
    with procs.Supervisor(tmp_path) as supervisor:
        began = time.monotonic()
        handle = localjaeger.start_jaeger(supervisor, workdir=tmp_path, binary=jaeger_binary)
        started = time.monotonic() - began
        send(handle.otlp_traces_url, [server_span(service, OPERATION, duration_ms=1)])
        began = time.monotonic()
        localjaeger.stop(handle)
        stopped = time.monotonic() - began

    # Measured: about 0.1 s to answer and 0.01 s to stop on an idle 2-core machine.
    assert started < 10.0
    assert stopped < 3.0
    assert handle.process.popen.returncode == 0
    assert not handle.process.group_alive()


def test_no_binary_is_an_error_that_says_how_to_build_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CANARY_JAEGER", str(tmp_path / "jaeger"))
    with pytest.raises(localjaeger.JaegerNotFound, match="tests/jaeger/build"):
        localjaeger.jaeger_binary()
    monkeypatch.delenv("CANARY_JAEGER")
    monkeypatch.delenv("CANARY_JAEGER_DIR", raising=False)
    monkeypatch.setenv("CANARY_TESTENV_CACHE", str(tmp_path))
    with pytest.raises(localjaeger.JaegerNotFound, match="tests/jaeger/build"):
        localjaeger.jaeger_binary()
