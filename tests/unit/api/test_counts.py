"""The count queries' texts: each built-in's pair per query set, the exact window, the spellings
of a bucket bound."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from canary.api import builtins, counts, templating

SINCE = datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)
NOW = datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC)
SIDE = {
    "namespace": "shop",
    "service": "reviews",
    "subset": "v2",
    "version": "v2",
    "operation": "GET /",
    builtins.BOUND: "250|250[.]0",
}


def test_the_window_is_the_value_at_now_less_the_value_at_since() -> None:
    text = counts.window("sum(x)", since=SINCE, now=NOW, absent_is_zero=False)
    assert text == (
        f"clamp_min(last_over_time((sum(x))[1m:1s] @ {NOW.timestamp():.3f}) - "
        f"(last_over_time((sum(x))[1m:1s] @ {SINCE.timestamp():.3f}) or vector(0)), 0)"
    )
    # Bad events absent at the window's end are none; requests absent stay no data.
    zero = counts.window("sum(x)", since=SINCE, now=NOW, absent_is_zero=True)
    assert zero == f"{text} or vector(0)"
    assert "increase(" not in text
    assert "rate(" not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (250.0, ("250", "250.0")),
        (1.0, ("1", "1.0")),
        (0.5, ("0.5",)),
        (2.5, ("2.5",)),
        (600000.0, ("600000", "600000.0")),
        # Go's %g (Prometheus 3's normalisation, Go clients) turns to exponents at 10^6.
        (3600000.0, ("3600000", "3600000.0", "3.6e+06")),
        (1000000.0, ("1000000", "1000000.0", "1e+06")),
        (0.00001, ("0.00001", "1e-05")),
    ],
)
def test_a_bound_is_matched_in_every_spelling(value: float, expected: tuple[str, ...]) -> None:
    assert counts.spellings(value) == expected
    pattern = re.compile(counts.bound_pattern(value))
    for spelling in expected:
        assert pattern.fullmatch(spelling)
    # Anchored by Prometheus: another bucket never matches (the dot is no wildcard).
    assert not pattern.fullmatch("25010")
    assert not pattern.fullmatch("2500")


def test_milliseconds_drop_the_floats_noise() -> None:
    assert counts.milliseconds(1.1) == 1100.0
    assert counts.milliseconds(0.25) == 250.0
    assert counts.milliseconds(0.0025) == 2.5


@pytest.mark.parametrize("query_set", list(builtins.QuerySet))
@pytest.mark.parametrize("name", sorted(builtins.NAMES))
def test_every_built_in_counts_both_sides_cumulatively(
    query_set: builtins.QuerySet, name: str
) -> None:
    pair = builtins.COUNTS[query_set][name]
    for text in (pair.requests, pair.bad):
        rendered = templating.render(text, SIDE)
        # Cumulative: a counter's value, summed to one series; the window is counts.window's.
        assert rendered.startswith("sum(")
        assert "rate(" not in rendered
        assert "increase(" not in rendered
        assert "{{" not in rendered
        assert "interval" not in text
        assert templating.variables(text) & {"subset", "version"}


@pytest.mark.parametrize(
    ("query_set", "requests", "bad"),
    [
        (
            builtins.QuerySet.ISTIO,
            "sum(istio_requests_total{",
            'destination_version="v2",response_code=~"5.."})',
        ),
        (
            builtins.QuerySet.ENVOY,
            "sum(envoy_cluster_upstream_rq_xx{",
            '[|]v2[|]reviews([.].*)?",envoy_response_code_class="5"})',
        ),
    ],
)
def test_success_rate_counts_5xx(query_set: builtins.QuerySet, requests: str, bad: str) -> None:
    pair = builtins.COUNTS[query_set][builtins.SUCCESS_RATE]
    assert templating.render(pair.requests, SIDE).startswith(requests)
    assert templating.render(pair.bad, SIDE).endswith(bad)
    assert pair.absent_is_zero


@pytest.mark.parametrize("query_set", list(builtins.QuerySet))
@pytest.mark.parametrize("name", sorted(builtins.LATENCY))
def test_latency_counts_the_requests_over_the_bound(
    query_set: builtins.QuerySet, name: str
) -> None:
    pair = builtins.COUNTS[query_set][name]
    requests = templating.render(pair.requests, SIDE)
    bad = templating.render(pair.bad, SIDE)
    assert requests.endswith('le="+Inf"})')
    # All requests less those within the bound, in both spellings of the bound.
    assert bad.startswith(f"{requests} - sum(")
    assert bad.endswith('le=~"250|250[.]0"})')
    # A missing bucket must stay no data: no `or vector(0)` makes it 0 slow requests.
    assert not pair.absent_is_zero


def test_trace_errors_count_error_spans() -> None:
    pair = builtins.COUNTS[builtins.QuerySet.ENVOY][builtins.TRACE_ERROR_RATE]
    assert templating.render(pair.bad, SIDE) == (
        'sum(traces_span_metrics_calls_total{service_name="reviews",span_name="GET /",'
        'span_kind="SPAN_KIND_SERVER",subset="v2",status_code="STATUS_CODE_ERROR"})'
    )
