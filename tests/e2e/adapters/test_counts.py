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

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from canary.adapters.prometheus import PrometheusMetrics
from canary.api import builtins
from canary.api.spec import CanarySpec
from canary.api.status import MeasurementKind
from canary.controller import counts, queries
from canary.controller.sources import PromQL
from canary.engine.observation import CountsReading
from canary.localmesh import procs
from canary.localmesh.prometheus import Target, start_prometheus
from canary.ports import CanaryKey

KEY = CanaryKey("shop", "reviews")
ISTIO = (
    'reporter="destination",destination_workload_namespace="shop",'
    'destination_service_name="reviews",destination_version="{version}"'
)
ENVOY = 'envoy_cluster_name="outbound|9080|{version}|reviews.shop.svc.cluster.local"'
# How long to wait for Prometheus to show what the exporter serves (1 s scrapes).
SEEN_TIMEOUT = 15.0


class Exporter(BaseHTTPRequestHandler):
    """Serves `counters` (series text -> value) in Prometheus' text format."""

    counters: ClassVar[dict[str, float]] = {}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            body = "".join(f"{series} {value:g}\n" for series, value in self.counters.items())
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def requests_of(version: str, code: str) -> str:
    return f'istio_requests_total{{{ISTIO.format(version=version)},response_code="{code}"}}'


def bucket(version: str, le: str) -> str:
    return (
        f'istio_request_duration_milliseconds_bucket{{{ISTIO.format(version=version)},le="{le}"}}'
    )


def envoy(version: str, code_class: str) -> str:
    labels = f'{ENVOY.format(version=version)},envoy_response_code_class="{code_class}"'
    return f"envoy_cluster_upstream_rq_xx{{{labels}}}"


@dataclass(frozen=True, slots=True)
class Scraped:
    url: str

    def value(self, query: str) -> float | None:
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        with urllib.request.urlopen(address, timeout=5) as response:
            result: list[Any] = json.load(response)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def set_and_wait(self, changes: dict[str, float]) -> float:
        """Serves `changes`, waits until Prometheus has them all, and returns a moment (Unix
        seconds) at which every one of them is stored: a window ending there counts them, one
        starting there does not."""
        with Exporter.lock:
            Exporter.counters.update(changes)
        deadline = time.monotonic() + SEEN_TIMEOUT
        while any(self.value(series) != value for series, value in changes.items()):
            assert time.monotonic() < deadline, f"Prometheus never showed {changes}"
            time.sleep(0.2)
        # The windows are read on a one-second grid: a second after the sample is seen, the
        # grid point at or before the moment comes after the sample's own timestamp. The
        # margin after it lets a scrape stamped before the moment finish reading the exporter
        # before the caller changes anything.
        moment = time.time() + 1.1
        time.sleep(max(0.0, moment - time.time()) + 0.6)
        return moment


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    Exporter.counters = {
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
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    try:
        with procs.Supervisor(workdir / "logs") as supervisor:
            handle = start_prometheus(
                supervisor,
                targets={"exporter": [Target(f"127.0.0.1:{exporter.server_address[1]}")]},
                workdir=workdir,
                port=procs.free_port(),
            )
            handle.wait_targets_up(expected=1, timeout=30)
            yield Scraped(handle.url)
    finally:
        exporter.shutdown()
        exporter.server_close()


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


def test_counts_are_exactly_the_increments_in_the_window(scraped: Scraped) -> None:
    since = scraped.set_and_wait({requests_of("v2", "200"): 100, envoy("v2", "2"): 40})
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


def test_a_bound_that_is_no_bucket_is_no_data_saying_so(scraped: Scraped) -> None:
    now = time.time()
    reading = read(
        scraped.url, {"name": "request-duration", "compare": {"slowerThan": "300ms"}}, 0, now
    )
    assert reading.canary_requests.kind is MeasurementKind.VALUE
    assert reading.canary_bad.kind is MeasurementKind.NO_DATA
    assert "slowerThan must be one of the histogram's bucket bounds" in reading.canary_bad.message
    assert reading.stable_bad.kind is MeasurementKind.NO_DATA


def test_no_request_series_is_no_data_and_no_5xx_series_is_none(scraped: Scraped) -> None:
    reading = read(scraped.url, SUCCESS, 0, time.time(), host="ratings")
    assert reading.canary_requests.kind is MeasurementKind.NO_DATA
    assert reading.stable_requests.kind is MeasurementKind.NO_DATA
    assert (reading.canary_bad.kind, reading.canary_bad.value) == (MeasurementKind.VALUE, 0)


def test_prometheus_down_is_an_error_never_zero() -> None:
    reading = read(f"http://127.0.0.1:{procs.free_port()}", SUCCESS, 0, time.time())
    for side in (reading.canary_requests, reading.canary_bad, reading.stable_bad):
        assert side.kind is MeasurementKind.ERROR
        assert "unreachable" in side.message
