"""The span-metrics built-ins (`trace-error-rate`, `trace-duration`) against the real
spanmetrics connector's output, scraped by a real Prometheus, judged beside the Jaeger path on
the same spans: both reach the same verdict.

The connector counts a span when it arrives, whatever its timestamps; Prometheus's rate sees
only what a series gained between its samples. So each series is made first with one span
that started minutes ago (counted by the connector, outside every Jaeger window), and the
judged spans come afterwards, in batches, as live traffic would.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest

from canary.adapters.jaeger import JaegerTraces
from canary.adapters.prometheus import PrometheusMetrics
from canary.api import builtins, templating
from canary.api.status import MeasurementKind
from canary.api.traces import JaegerProvider
from canary.controller.queries import ResolvedQuery
from canary.controller.traces import SpanCheck
from canary.engine.observation import Measurement
from canary.localmesh import jaeger as localjaeger
from tests.jaeger import query
from tests.jaeger.spans import now_ns, send, server_span

OPERATION = "POST /checkout"
QUERIES = builtins.QUERIES[builtins.QuerySet.ENVOY]
SLOW_MS = 400.0
FAST_MS = 20.0


def spans_of(name: str, subset: str, durations: list[float], errors: int) -> list:  # type: ignore[type-arg]
    return [
        server_span(
            name, OPERATION, duration_ms=ms, error=index < errors, attributes={"subset": subset}
        )
        for index, ms in enumerate(durations)
    ]


def builtin(metrics: PrometheusMetrics, name: str, service: str, subset: str) -> Measurement:
    values = {
        "namespace": "shop",
        "service": service,
        "subset": subset,
        "version": subset,
        "interval": "1m",
        builtins.OPERATION: OPERATION,
    }
    asked = QUERIES[name]
    return metrics.measure(
        templating.render(asked.query, values),
        requests_query=templating.render(asked.requests, values),
    )


def jaeger_value(
    handle: localjaeger.JaegerHandle, service: str, subset: str, **what: object
) -> Measurement:
    provider = JaegerProvider.model_validate(
        {
            "address": handle.query_url,
            "service": service,
            "operation": OPERATION,
            "versionTag": "subset",
            "versionValue": "{{ subset }}",
            "minSpans": 50,
            **what,
        }
    )
    variables = {"subset": subset, "version": subset, "interval": "1m"}
    question = ResolvedQuery("", None, None, variables, variables, 60.0)
    return SpanCheck(JaegerTraces(handle.query_url), provider).measure(
        question, datetime.now(UTC) + timedelta(seconds=1)
    )


def test_the_built_ins_and_the_jaeger_path_judge_the_same_spans_alike(
    jaeger: localjaeger.JaegerHandle, prometheus_url: str
) -> None:
    service = f"shop-{secrets.token_hex(3)}"
    # The calls series first: one OK span per version, started five minutes ago. The error
    # series are born with the judged traffic, as a first error's is: v1 never has one, which
    # the built-in reads as 0% (not as no data).
    long_ago = now_ns() - 300 * 1_000_000_000
    first = [
        server_span(service, OPERATION, duration_ms=FAST_MS, start_ns=long_ago,
                    attributes={"subset": subset})
        for subset in ("v1", "v2")
    ]  # fmt: skip
    send(jaeger.otlp_traces_url, first)
    metrics = PrometheusMetrics(prometheus_url)
    every_series = f'count(traces_span_metrics_calls_total{{service_name="{service}"}})'
    query.poll(
        "both versions' series scraped",
        lambda: (
            True
            if (found := metrics.measure(every_series)).value is not None and found.value >= 2
            else None
        ),
        timeout=20.0,
    )
    # Then the judged traffic, over a few scrapes: v2 has 3% slow checkouts and 5% errors.
    for _ in range(4):
        send(jaeger.otlp_traces_url, spans_of(service, "v1", [FAST_MS] * 25, errors=0))
        v2 = [SLOW_MS] * 1 + [FAST_MS] * 24
        send(jaeger.otlp_traces_url, spans_of(service, "v2", v2, errors=1 if _ % 4 else 2))
        time.sleep(1.0)
    expected_v2_spans = 100

    def all_scraped() -> bool | None:
        got = builtin(metrics, builtins.TRACE_DURATION, service, "v2")
        return True if got.samples is not None and got.samples >= 60 else None

    query.poll("the judged spans scraped", all_scraped, timeout=20.0)
    time.sleep(2.5)  # one more flush and scrape, so the last batch is in every series

    prom = {
        (name, subset): builtin(metrics, name, service, subset)
        for name in (builtins.TRACE_DURATION, builtins.TRACE_ERROR_RATE)
        for subset in ("v1", "v2")
    }
    traced = {
        (builtins.TRACE_DURATION, subset): jaeger_value(
            jaeger, service, subset, compute="latency", percentile=99
        )
        for subset in ("v1", "v2")
    } | {
        (builtins.TRACE_ERROR_RATE, subset): jaeger_value(
            jaeger, service, subset, compute="errorRatio"
        )
        for subset in ("v1", "v2")
    }
    for key, measured in (prom | traced).items():
        assert measured.kind is MeasurementKind.VALUE, (key, measured)
    assert traced[(builtins.TRACE_DURATION, "v2")].spans is not None
    assert traced[(builtins.TRACE_DURATION, "v2")].spans.spans == expected_v2_spans

    # p99 <= 200 ms: v2 fails both ways (Jaeger's is a real slow span; the histogram's lies in
    # the bucket that holds it), v1 passes both ways.
    limit = 200.0
    for path in (prom, traced):
        assert path[(builtins.TRACE_DURATION, "v2")].value > limit  # type: ignore[operator]
        assert path[(builtins.TRACE_DURATION, "v1")].value <= limit  # type: ignore[operator]
    assert traced[(builtins.TRACE_DURATION, "v2")].value == pytest.approx(SLOW_MS, abs=0.5)
    assert 250.0 < prom[(builtins.TRACE_DURATION, "v2")].value <= 500.0  # type: ignore[operator]
    # Errors <= 1%: v2's 5 in 100 fail both ways, v1's none pass.
    assert traced[(builtins.TRACE_ERROR_RATE, "v2")].value == pytest.approx(5.0)
    # A rate of counters is close, not exact: the error series' first sample already holds the
    # errors it was born with, which rate() cannot see, and each increase is extrapolated.
    assert 1.0 < prom[(builtins.TRACE_ERROR_RATE, "v2")].value < 8.0  # type: ignore[operator]
    assert traced[(builtins.TRACE_ERROR_RATE, "v1")].value == 0.0
    assert prom[(builtins.TRACE_ERROR_RATE, "v1")].value == 0.0
