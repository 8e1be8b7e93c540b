"""Spans made to measure, sent to Jaeger over OTLP/HTTP in JSON (no protobuf needed).

A test picks every field that matters to what it checks: the service, the operation, exact
start and end times (so durations, and the latency buckets they fall in, are known), the status
and the attributes a query filters on (`subset: v2`). OTLP's JSON encoding writes trace and span
ids as hex, 64-bit integers as strings, and enums as numbers.
"""

from __future__ import annotations

import enum
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

AttributeValue = str | bool | int | float


class SpanKind(enum.IntEnum):
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3


class Status(enum.IntEnum):
    UNSET = 0
    OK = 1
    ERROR = 2


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def now_ns() -> int:
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class Span:
    service: str
    name: str
    start_ns: int
    end_ns: int
    status: Status = Status.OK
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    kind: SpanKind = SpanKind.SERVER
    trace_id: str = field(default_factory=new_trace_id)
    span_id: str = field(default_factory=new_span_id)
    parent_span_id: str = ""

    @property
    def duration_us(self) -> int:
        """The duration as Jaeger's API reports it (microseconds)."""
        return (self.end_ns - self.start_ns) // 1000


def server_span(
    service: str,
    name: str,
    *,
    duration_ms: float,
    start_ns: int | None = None,
    error: bool = False,
    attributes: Mapping[str, AttributeValue] | None = None,
    trace_id: str | None = None,
) -> Span:
    """A SERVER span of exactly `duration_ms`, ending now unless `start_ns` says when it began."""
    length = round(duration_ms * 1_000_000)
    start = now_ns() - length if start_ns is None else start_ns
    return Span(
        service=service,
        name=name,
        start_ns=start,
        end_ns=start + length,
        status=Status.ERROR if error else Status.OK,
        attributes=dict(attributes or {}),
        trace_id=trace_id or new_trace_id(),
    )


def _value(value: AttributeValue) -> dict[str, Any]:
    # bool before int: a bool is an int in Python.
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def _attributes(attributes: Mapping[str, AttributeValue]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in attributes.items()]


def _span_json(span: Span) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": int(span.kind),
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": _attributes(span.attributes),
        "status": {"code": int(span.status)},
    }
    if span.parent_span_id:
        encoded["parentSpanId"] = span.parent_span_id
    return encoded


def otlp_json(spans: Iterable[Span]) -> dict[str, Any]:
    """An OTLP `ExportTraceServiceRequest` in JSON: one resource per service."""
    by_service: dict[str, list[Span]] = {}
    for span in spans:
        by_service.setdefault(span.service, []).append(span)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes({"service.name": service})},
                "scopeSpans": [
                    {"scope": {"name": "canary-tests"}, "spans": [_span_json(s) for s in group]}
                ],
            }
            for service, group in by_service.items()
        ]
    }


class SendFailed(RuntimeError):
    pass


def send(traces_url: str, spans: Iterable[Span], *, timeout: float = 5.0) -> None:
    """POSTs the spans to an OTLP/HTTP receiver (`JaegerHandle.otlp_traces_url`).

    Raises `SendFailed` unless every span was accepted.
    """
    body = json.dumps(otlp_json(spans)).encode()
    request = urllib.request.Request(
        traces_url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read()
    except urllib.error.HTTPError as exc:
        raise SendFailed(f"{traces_url} answered {exc.code}: {exc.read()[:500]!r}") from exc
    except OSError as exc:
        raise SendFailed(f"cannot send spans to {traces_url}: {exc}") from exc
    rejected = json.loads(answer or b"{}").get("partialSuccess", {}).get("rejectedSpans")
    if rejected:
        raise SendFailed(f"{traces_url} rejected {rejected} spans: {answer[:500]!r}")
