"""Prometheus as a MetricsProvider: one instant query in, one Measurement out.

Every way a query can go wrong becomes a kind of Measurement, never an exception and never 0:
an empty result is `no_data` (and says so, because "no values found" with no hint is the commonest
support thread canary tools have, flagger#1365), NaN is `nan`, a PromQL error or an unreachable
server is `error` with Prometheus' own words. More than one series is an error too: picking one
of them, as Flagger does, would judge an arbitrary pod.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from canary.api.metric_template import PrometheusProvider
from canary.api.status import MeasurementKind
from canary.engine.observation import Measurement
from canary.ports import Secrets


class PrometheusMetrics:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
    ) -> None:
        """`verify`: True (the system's trust store), False (no verification), or the path of
        a PEM bundle of the CAs to trust."""
        self.url = url.rstrip("/")
        session = requests.Session()
        session.verify = verify
        # No retries inside a query: the next check is the retry, and a slow failure would hold
        # up every other Canary's tick.
        self._client = PrometheusConnect(
            url=self.url,
            headers=dict(headers or {}),
            retry=Retry(total=0),
            timeout=timeout,
            session=session,
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


class PrometheusProviders:
    """The MetricsProvider for a template's `provider.prometheus`, with its Secrets read.

    One client per distinct configuration, so a template checked every few seconds reuses its
    connection pool; a rotated Secret makes a new configuration, hence a new client.
    """

    def __init__(self, secrets: Secrets, *, timeout: float = 5.0) -> None:
        self.secrets = secrets
        self.timeout = timeout
        self._clients: dict[tuple[object, ...], PrometheusMetrics] = {}
        self._ca_files: dict[str, str] = {}

    def __call__(self, backend: PrometheusProvider, namespace: str) -> PrometheusMetrics:
        headers = {
            header.name: self.secrets.value(namespace, header.value_from.secret_key_ref)
            for header in backend.headers
        }
        if backend.bearer_token is not None:
            token = self.secrets.value(namespace, backend.bearer_token).strip()
            headers["Authorization"] = f"Bearer {token}"
        verify: bool | str = not backend.tls.insecure_skip_verify
        if verify and backend.tls.ca_bundle is not None:
            verify = self._ca_file(self.secrets.value(namespace, backend.tls.ca_bundle))
        key = (backend.address, tuple(sorted(headers.items())), verify)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = PrometheusMetrics(
                backend.address, timeout=self.timeout, headers=headers, verify=verify
            )
        return client

    def _ca_file(self, pem: str) -> str:
        # requests takes a CA bundle as a path; one file per distinct bundle, kept for the
        # process's life (a handful of bundles at most).
        digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
        path = self._ca_files.get(digest)
        if path is None:
            handle, path = tempfile.mkstemp(prefix=f"canary-ca-{digest}-", suffix=".pem")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(pem)
            self._ca_files[digest] = path
        return path
