"""The Prometheus adapter against a real Prometheus scraping a real (tiny) exporter on loopback.

Every kind of answer a check can get comes out as the right kind of Measurement: a value, no
data (with a hint), NaN, +Inf and -Inf, a PromQL error in Prometheus' words, several series, and
no Prometheus.
"""

from __future__ import annotations

import math

import pytest

from canary.adapters.prometheus import PrometheusMetrics
from canary.api.metrics import MetricCheck
from canary.api.status import MeasurementKind, Verdict
from canary.engine import judge
from canary.localmesh import procs
from tests.e2e.adapters.conftest import Scraped

EXPOSITION = b"""# TYPE demo_requests_total counter
demo_requests_total{code="200"} 100
demo_requests_total{code="500"} 5
# TYPE demo_value gauge
demo_value 42.5
# TYPE demo_latency histogram
demo_latency_bucket{le="100"} 0
demo_latency_bucket{le="500"} 0
demo_latency_bucket{le="+Inf"} 10
demo_latency_sum 99999
demo_latency_count 10
"""


@pytest.fixture(scope="module")
def prometheus_url(scraped: Scraped) -> str:
    scraped.publish(EXPOSITION, seen="demo_value")
    return scraped.url


def test_a_single_series_is_a_value(prometheus_url: str) -> None:
    measured = PrometheusMetrics(prometheus_url).measure(
        "demo_value", requests_query="sum(demo_requests_total)"
    )
    assert measured.kind is MeasurementKind.VALUE
    assert measured.value == 42.5
    assert measured.samples == 105
    assert measured.query == "demo_value"


def test_no_series_is_no_data_with_a_hint(prometheus_url: str) -> None:
    measured = PrometheusMetrics(prometheus_url).measure('demo_value{job="typo"}')
    assert measured.kind is MeasurementKind.NO_DATA
    assert "matched no series" in measured.message


def test_nan_is_its_own_kind(prometheus_url: str) -> None:
    measured = PrometheusMetrics(prometheus_url).measure("sum(demo_value) * 0 / 0")
    assert measured.kind is MeasurementKind.NAN
    scalar = PrometheusMetrics(prometheus_url).measure("0/0")
    assert scalar.kind is MeasurementKind.NAN


@pytest.mark.parametrize(("query", "sign"), [("sum(demo_value) / 0", 1), ("-1 / 0", -1)])
def test_an_infinity_is_a_value_that_never_passes(
    prometheus_url: str, query: str, sign: int
) -> None:
    """Prometheus answers x/0 with +Inf or -Inf: a value, and the judge fails it whichever side
    of the range it is on (engine/judge.py)."""
    measured = PrometheusMetrics(prometheus_url).measure(query)
    assert measured.kind is MeasurementKind.VALUE
    assert measured.value == sign * math.inf
    for limits in ({"min": 99}, {"max": 500}):
        check = MetricCheck.model_validate(
            {"name": "request-success-rate", "thresholdRange": limits}
        )
        assert judge.metric(check, measured, waited=0, step_interval=60).verdict is Verdict.FAIL


def test_requests_slower_than_every_bucket_give_the_largest_finite_bound(
    prometheus_url: str,
) -> None:
    """Not +Inf: why a latency max must lie below the largest finite bucket to ever fail (the
    note in thresholdRange's description)."""
    measured = PrometheusMetrics(prometheus_url).measure(
        "histogram_quantile(0.99, sum by (le) (demo_latency_bucket))"
    )
    assert (measured.kind, measured.value) == (MeasurementKind.VALUE, 500.0)


def test_a_promql_error_says_what_prometheus_said(prometheus_url: str) -> None:
    measured = PrometheusMetrics(prometheus_url).measure("sum(demo_value")
    assert measured.kind is MeasurementKind.ERROR
    assert "Prometheus refused the query" in measured.message
    assert "parse error" in measured.message


def test_several_series_are_an_error_not_a_pick(prometheus_url: str) -> None:
    measured = PrometheusMetrics(prometheus_url).measure("demo_requests_total")
    assert measured.kind is MeasurementKind.ERROR
    assert "2 series" in measured.message


def test_prometheus_down_is_an_error_quickly() -> None:
    measured = PrometheusMetrics(f"http://127.0.0.1:{procs.free_port()}", timeout=2).measure("up")
    assert measured.kind is MeasurementKind.ERROR
    assert "unreachable" in measured.message
