"""A comparing check's counts read from a real Prometheus scraping a tiny exporter on loopback.

The exporter serves counters the test sets: Istio's request counter and duration histogram and
Envoy's response-class counter, for the canary (v2) and stable (v1). The test bumps them at
known moments and reads each side's counts with controller/counts.py through the real
Prometheus adapter: a reading since a moment gives exactly the increments after it (whole
numbers, no extrapolation), a 5xx series created after that moment counts from zero, two
consecutive windows add up to the window that spans both, a latency bound is found in either
spelling of its bucket (`250` and Prometheus 3's `250.0`), a bound that is no bucket is no
data saying so, and Prometheus down is an error, never 0.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from canary.adapters.prometheus import PrometheusMetrics
from canary.api import builtins
from canary.api.spec import CanarySpec
from canary.api.status import MeasurementKind
from canary.controller import counts, queries
from canary.controller.sources import PromQL
from canary.engine.observation import CountsReading
from canary.localmesh import procs
from canary.ports import CanaryKey
from tests.e2e.adapters.conftest import Scraped

KEY = CanaryKey("shop", "reviews")
ISTIO = (
    'reporter="destination",destination_workload_namespace="shop",'
    'destination_service_name="reviews",destination_version="{version}"'
)
ENVOY = 'envoy_cluster_name="outbound|9080|{version}|reviews.shop.svc.cluster.local"'


def requests_of(version: str, code: str) -> str:
    return f'istio_requests_total{{{ISTIO.format(version=version)},response_code="{code}"}}'


def bucket(version: str, le: str) -> str:
    return (
        f'istio_request_duration_milliseconds_bucket{{{ISTIO.format(version=version)},le="{le}"}}'
    )


def envoy(version: str, code_class: str) -> str:
    labels = f'{ENVOY.format(version=version)},envoy_response_code_class="{code_class}"'
    return f"envoy_cluster_upstream_rq_xx{{{labels}}}"


INITIAL = {
    requests_of("v2", "200"): 100,
    requests_of("v1", "200"): 1000,
    # The canary's histogram spells its bounds as Envoy and Prometheus 2 keep them, the
    # stable's as Prometheus 3 stores them: the same bound is found in both.
    bucket("v2", "100"): 80,
    bucket("v2", "250"): 90,
    bucket("v2", "+Inf"): 100,
    bucket("v1", "100.0"): 900,
    bucket("v1", "250.0"): 950,
    bucket("v1", "+Inf"): 1000,
    envoy("v2", "2"): 40,
    envoy("v1", "2"): 400,
}


@pytest.fixture(scope="module")
def counters(scraped: Scraped) -> float:
    """Serves the counters as they stand before the test moves them; the moment they do."""
    return scraped.set_and_wait(INITIAL)


def spec_of(metric: dict[str, Any], host: str = "reviews") -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": host},
            "stable": {"subset": "v1", "labels": {"version": "v1"}},
            "canary": {"subset": "v2", "labels": {"version": "v2"}},
            "analysis": {"stepWeights": [10, 50], "metrics": [metric]},
        }
    )


def read(
    url: str,
    metric: dict[str, Any],
    since: float,
    now: float,
    *,
    query_set: builtins.QuerySet = builtins.QuerySet.ISTIO,
    host: str = "reviews",
) -> CountsReading:
    spec = spec_of(metric, host)
    check = spec.analysis.metrics[0]
    canary, stable = queries.variables(KEY, spec, check)
    return counts.read(
        check,
        None,
        canary=canary,
        stable=stable,
        since=datetime.fromtimestamp(since, UTC),
        now=datetime.fromtimestamp(now, UTC),
        query_set=query_set,
        evidence=PromQL(PrometheusMetrics(url, timeout=5)),
    )


def values(reading: CountsReading) -> tuple[float | None, ...]:
    sides = (
        reading.canary_requests,
        reading.canary_bad,
        reading.stable_requests,
        reading.stable_bad,
    )
    for side in sides:
        assert side.kind is MeasurementKind.VALUE, side
    return tuple(side.value for side in sides)


SUCCESS = {"name": "request-success-rate", "compare": {}}


def test_counts_are_exactly_the_increments_in_the_window(scraped: Scraped, counters: float) -> None:
    since = counters
    middle = scraped.set_and_wait(
        {
            requests_of("v2", "200"): 130,
            # Created after `since`: its 7 count from zero (increase() would miss them).
            requests_of("v2", "503"): 7,
            requests_of("v1", "200"): 1100,
            bucket("v2", "100"): 100,
            bucket("v2", "250"): 115,
            bucket("v2", "+Inf"): 137,
            bucket("v1", "100.0"): 980,
            bucket("v1", "250.0"): 1040,
            bucket("v1", "+Inf"): 1100,
            envoy("v2", "2"): 52,
            envoy("v2", "5"): 3,
            envoy("v1", "2"): 450,
        }
    )
    # Stable never answered a 5xx: no such series, which is 0 bad events.
    assert values(read(scraped.url, SUCCESS, since, middle)) == (37, 7, 100, 0)
    envoy_reading = read(scraped.url, SUCCESS, since, middle, query_set=builtins.QuerySet.ENVOY)
    assert values(envoy_reading) == (15, 3, 50, 0)
    slow = {"name": "request-duration", "compare": {"slowerThan": "250ms"}}
    # Over 250 ms: +Inf less le=250 (the canary's spelling) or le=250.0 (stable's).
    assert values(read(scraped.url, slow, since, middle)) == (37, 37 - 25, 100, 100 - 90)

    end = scraped.set_and_wait({requests_of("v2", "200"): 140, requests_of("v2", "503"): 9})
    # Consecutive windows tile time: each request is counted in exactly one.
    assert values(read(scraped.url, SUCCESS, middle, end)) == (12, 2, 0, 0)
    assert values(read(scraped.url, SUCCESS, since, end)) == (49, 9, 100, 0)
    # A controller whose clock runs ahead of Prometheus' reads the latest samples all the same.
    assert values(read(scraped.url, SUCCESS, since, end + 30)) == (49, 9, 100, 0)


def test_a_bound_that_is_no_bucket_is_no_data_saying_so(scraped: Scraped, counters: float) -> None:
    now = time.time()
    reading = read(
        scraped.url, {"name": "request-duration", "compare": {"slowerThan": "300ms"}}, 0, now
    )
    assert reading.canary_requests.kind is MeasurementKind.VALUE
    assert reading.canary_bad.kind is MeasurementKind.NO_DATA
    assert "slowerThan must be one of the histogram's bucket bounds" in reading.canary_bad.message
    assert reading.stable_bad.kind is MeasurementKind.NO_DATA


def test_no_request_series_is_no_data_and_no_5xx_series_is_none(
    scraped: Scraped, counters: float
) -> None:
    reading = read(scraped.url, SUCCESS, 0, time.time(), host="ratings")
    assert reading.canary_requests.kind is MeasurementKind.NO_DATA
    assert reading.stable_requests.kind is MeasurementKind.NO_DATA
    assert (reading.canary_bad.kind, reading.canary_bad.value) == (MeasurementKind.VALUE, 0)


def test_prometheus_down_is_an_error_never_zero() -> None:
    reading = read(f"http://127.0.0.1:{procs.free_port()}", SUCCESS, 0, time.time())
    for side in (reading.canary_requests, reading.canary_bad, reading.stable_bad):
        assert side.kind is MeasurementKind.ERROR
        assert "unreachable" in side.message
