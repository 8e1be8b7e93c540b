"""Jaeger's query API (`GET /api/traces`) behind the `TraceSource` port.

Jaeger answers whole traces: every span of each trace that holds a span matching the service,
operation and tags asked for. Only the matching spans are kept here, with their duration and
whether they are errors (the `error` tag Jaeger sets from an OTLP error status or a tracer's
own `error=true`, or `otel.status_code: ERROR`). A span's tag is looked up on the span, then on
its process (a tracer may put the version on the resource).

Bounded as every outside call is: the whole request, reading included, must end within the
query's timeout, and an answer larger than MAX_ANSWER bytes is refused. Down, slow, a non-200
status, JSON that is not the API's shape: Unavailable, with a line that says which.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
import urllib3

from canary.api.traces import JaegerProvider
from canary.engine.spans import Span
from canary.errors import Unavailable
from canary.ports import SpanQuery, SpanSample

# A thousand traces of a few dozen spans each is a few megabytes; more is not an answer to a
# bounded query.
MAX_ANSWER = 64 * 1024 * 1024
_CHUNK = 64 * 1024


class JaegerTraces:
    """One Jaeger query service, at `address` (e.g. http://jaeger-query:16686)."""

    def __init__(self, address: str, *, session: requests.Session | None = None) -> None:
        self.address = address.rstrip("/")
        self._session = session or requests.Session()
        # Jaeger is reached directly: a proxy from the environment would be asked instead.
        self._session.trust_env = False

    def spans(self, query: SpanQuery) -> SpanSample:
        params = {
            "service": query.service,
            "operation": query.operation,
            "tags": json.dumps(dict(query.tags), sort_keys=True),
            "start": str(_micros(query.start)),
            "end": str(_micros(query.end)),
            "limit": str(query.limit),
        }
        answer = self._get("/api/traces", params, query.timeout)
        traces = answer.get("data")
        if traces is None:
            traces = []
        if not isinstance(traces, list):
            raise Unavailable(f"jaeger at {self.address}: `data` is not a list of traces")
        found: list[Span] = []
        start, end = _micros(query.start), _micros(query.end)
        for trace in traces:
            found.extend(_matching(trace, query, start, end, self.address))
        return SpanSample(
            spans=tuple(found), traces=len(traces), truncated=len(traces) >= query.limit
        )

    def _get(self, path: str, params: Mapping[str, str], timeout: float) -> dict[str, Any]:
        url = f"{self.address}{path}"
        deadline = time.monotonic() + timeout
        try:
            with self._session.get(url, params=params, timeout=timeout, stream=True) as response:
                body = bytearray()
                # read1 returns what one read of the socket gave, so the deadline is looked at
                # between reads: an answer that trickles in never outlasts it by more than one
                # read's timeout. (iter_content would wait to fill each chunk.)
                while chunk := response.raw.read1(_CHUNK, decode_content=True):
                    body.extend(chunk)
                    if len(body) > MAX_ANSWER:
                        raise Unavailable(
                            f"jaeger at {self.address}: answer larger than {MAX_ANSWER} bytes"
                        )
                    if time.monotonic() > deadline:
                        raise Unavailable(
                            f"jaeger at {self.address}: no full answer within {timeout:g}s"
                        )
                status = response.status_code
        except requests.Timeout as exc:
            raise Unavailable(f"jaeger at {self.address}: no answer within {timeout:g}s") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise Unavailable(f"jaeger at {self.address}: {_reason(exc)}") from exc
        if status != 200:
            raise Unavailable(
                f"jaeger at {self.address}: {path} answered {status}: {_error_of(bytes(body))}"
            )
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise Unavailable(f"jaeger at {self.address}: {path} answered no JSON") from exc
        if not isinstance(answer, dict):
            raise Unavailable(f"jaeger at {self.address}: {path} answered no JSON object")
        errors = answer.get("errors")
        if errors:
            raise Unavailable(f"jaeger at {self.address}: {path} answered errors {errors}")
        return answer


class JaegerSources:
    """The composition root's factory: a `TraceSource` for a template's jaeger sub-model."""

    def __init__(self) -> None:
        self._by_address: dict[str, JaegerTraces] = {}

    def __call__(self, backend: JaegerProvider, namespace: str) -> JaegerTraces:
        # One session (its connection pool) per address, shared by every template naming it.
        found = self._by_address.get(backend.address)
        if found is None:
            found = self._by_address[backend.address] = JaegerTraces(backend.address)
        return found


def _matching(trace: Any, query: SpanQuery, start: int, end: int, address: str) -> list[Span]:
    if not isinstance(trace, dict) or not isinstance(trace.get("spans"), list):
        raise Unavailable(f"jaeger at {address}: a trace without a list of spans")
    processes = trace.get("processes") or {}
    if not isinstance(processes, dict):
        raise Unavailable(f"jaeger at {address}: a trace whose processes are not an object")
    kept: list[Span] = []
    for span in trace["spans"]:
        try:
            if span["operationName"] != query.operation:
                continue
            began = int(span["startTime"])
            duration = float(span["duration"])
            trace_id = str(span["traceID"])
            process = processes.get(span.get("processID"), {})
            if process.get("serviceName") != query.service:
                continue
            tags = {**_tags(process.get("tags")), **_tags(span.get("tags"))}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise Unavailable(f"jaeger at {address}: a span without {exc}") from exc
        if not start <= began < end:
            continue
        if any(tags.get(name) != value for name, value in query.tags.items()):
            continue
        error = tags.get("error") == "true" or tags.get("otel.status_code") == "ERROR"
        kept.append(Span(trace_id=trace_id, duration_ms=duration / 1000.0, error=error))
    return kept


def _tags(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    found: dict[str, str] = {}
    for tag in raw:
        value = tag["value"]
        # Jaeger types its tag values; a query's are text, as they come from YAML templates.
        found[str(tag["key"])] = str(value).lower() if isinstance(value, bool) else str(value)
    return found


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _reason(exc: Exception) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset (is Jaeger's query service up?)"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "no full answer in time"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "the answer broke off"
    return type(exc).__name__


def _error_of(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace").strip() or "(empty)"
    if isinstance(answer, dict) and answer.get("errors"):
        return str(answer["errors"])[:200]
    return body[:200].decode(errors="replace").strip()
