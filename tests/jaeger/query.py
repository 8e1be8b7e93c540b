"""Reading back what Jaeger made of the spans: its `/api/traces` answer and the span metrics its
prometheus exporter serves, both over plain HTTP, and a bounded wait for either to show up."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

T = TypeVar("T")


def get_json(
    url: str, params: Mapping[str, str | int] | None = None, *, timeout: float = 5.0
) -> tuple[int, dict[str, Any]]:
    """The status and the JSON body of a GET, an error status included (Jaeger explains those
    in the body's `errors`)."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def find_traces(
    query_url: str,
    *,
    service: str,
    operation: str | None = None,
    tags: Mapping[str, str] | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
    limit: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """`GET /api/traces` with the parameters given (times in microseconds since the epoch)."""
    params: dict[str, str | int] = {"service": service}
    if operation is not None:
        params["operation"] = operation
    if tags is not None:
        params["tags"] = json.dumps(dict(tags))
    if start_us is not None:
        params["start"] = start_us
    if end_us is not None:
        params["end"] = end_us
    if limit is not None:
        params["limit"] = limit
    return get_json(f"{query_url}/api/traces", params)


def span_metrics(metrics_url: str, *, timeout: float = 5.0) -> list[Sample]:
    """Every sample the exporter serves now (histograms as their _bucket, _sum, _count)."""
    with urllib.request.urlopen(metrics_url, timeout=timeout) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def poll(what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2) -> T:
    """The first answer of `probe` that is not None, asked at most timeout/interval + 1 times."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        found = probe()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:g} s")
