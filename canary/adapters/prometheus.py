"""Prometheus as a MetricsProvider: one instant query in, one Measurement out.

Every way a query can go wrong becomes a kind of Measurement, never an exception and never 0:
an empty result is `no_data` (and says so, because "no values found" with no hint is the commonest
support thread canary tools have, flagger#1365), NaN is `nan`, a PromQL error or an unreachable
server is `error` with Prometheus' own words. More than one series is an error too: picking one
of them, as Flagger does, would judge an arbitrary pod.
"""

from __future__ import annotations

import json
import math
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from canary.api.status import MeasurementKind
from canary.engine.observation import Measurement


class PrometheusMetrics:
    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        # No retries inside a query: the next check is the retry, and a slow failure would hold
        # up every other Canary's tick.
        self._client = PrometheusConnect(
            url=self.url, disable_ssl=True, retry=Retry(total=0), timeout=timeout
        )

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        main = self._instant(query)
        if main.kind is not MeasurementKind.VALUE or requests_query is None:
            return main
        count = self._instant(requests_query)
        samples = (
            round(count.value)
            if count.kind is MeasurementKind.VALUE and count.value is not None
            else None
        )
        return Measurement(main.kind, value=main.value, query=query, samples=samples)

    def _instant(self, query: str) -> Measurement:
        try:
            result: list[dict[str, Any]] = self._client.custom_query(query)
        except PrometheusApiClientException as exc:
            return Measurement.error(_prometheus_error(exc), query=query)
        except requests.RequestException as exc:
            return Measurement.error(
                f"Prometheus at {self.url} unreachable: {type(exc).__name__}", query=query
            )
        except ValueError as exc:  # a body that is not JSON: not a Prometheus at that address
            return Measurement.error(f"not a Prometheus answer from {self.url}: {exc}", query=query)
        if not result:
            return Measurement.no_data(
                query=query, message="the query matched no series (no traffic, or a label typo?)"
            )
        if len(result) > 1 and not isinstance(result[0], int | float):
            labels = [series.get("metric", {}) for series in result[:3]]
            return Measurement.error(
                f"the query returned {len(result)} series, expected one; aggregate it "
                f"(e.g. sum(...)); first: {labels}",
                query=query,
            )
        try:
            # A scalar result (`0/0`, `vector(1)[0]`...) comes as [time, "value"], not series.
            raw = result[1] if isinstance(result[0], int | float) else result[0]["value"][1]
            value = float(raw)
        except (KeyError, IndexError, TypeError, ValueError):
            return Measurement.error(f"unexpected result shape: {result[0]!r}", query=query)
        if math.isnan(value):
            return Measurement(MeasurementKind.NAN, query=query, message="NaN")
        return Measurement.of(value, query=query)


def _prometheus_error(exc: PrometheusApiClientException) -> str:
    text = str(exc)
    # The client puts the raw body in its message; Prometheus' own sentence is in it as JSON.
    start = text.find("{")
    if start >= 0:
        raw = text[start:].rstrip(")'\"")
        try:
            body = json.loads(raw.encode().decode("unicode_escape"))
            return f"Prometheus refused the query: {body.get('error', raw)}"
        except ValueError:
            pass
    return f"Prometheus refused the query: {text}"
