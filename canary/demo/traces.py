"""The live view's own look at the spans a trace check judges, for both versions.

A trace check records the canary's value (and the stable's only when it compares), so the demo
asks Jaeger itself, once a second, for the judged operation's spans of each version over the
check's window, with the same port and computation the check uses: the view shows the stable's
p99 beside the canary's, whatever the template compares.

`MeshJaeger` is the demo's answer to every trace template: the mesh's own Jaeger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from canary.adapters.jaeger import JaegerTraces
from canary.api import durations, templating
from canary.api.resources import Canary
from canary.api.traces import JaegerProvider, SpanCompute
from canary.controller import queries
from canary.controller.traces import span_query
from canary.engine import spans as computed
from canary.errors import CanaryError
from canary.ports import CanaryKey, SpanQuery, TraceSource

log = structlog.get_logger("canary.demo")


@dataclass(frozen=True, slots=True)
class SpanStat:
    """One version's spans of the watched operation in the window: how many, and the value."""

    spans: int
    value: float | None


@dataclass(frozen=True, slots=True)
class SpanWatch:
    """One trace check's question, asked for each version: `tags[version]` picks its spans."""

    check: str
    service: str
    operation: str
    backend: JaegerProvider
    tags: Mapping[str, Mapping[str, str]]
    window_s: float
    # The check's upper bound (thresholdRange.max), to draw beside the values.
    threshold_max: float | None = None

    @property
    def label(self) -> str:
        """What the value is, e.g. `p99 ms`."""
        if self.backend.compute is SpanCompute.LATENCY:
            return f"p{self.backend.percentile:g} ms"
        return "errors %"

    def measure(self, source: TraceSource, now: datetime | None = None) -> dict[str, SpanStat]:
        """Each version's spans now; a version Jaeger could not answer for is left out."""
        end = now or datetime.now(UTC)
        found: dict[str, SpanStat] = {}
        for version, tags in self.tags.items():
            query = SpanQuery(
                service=self.service,
                operation=self.operation,
                tags=tags,
                start=end - timedelta(seconds=self.window_s),
                end=end,
                limit=self.backend.limit,
                timeout=durations.seconds(self.backend.timeout),
            )
            try:
                sample = source.spans(query)
            except CanaryError:
                continue
            value = (
                computed.value_of(sample.spans, self.backend.compute, self.backend.percentile)
                if sample.spans
                else None
            )
            found[version] = SpanStat(spans=len(sample.spans), value=value)
        return found


def watch(
    bodies: Sequence[Mapping[str, Any]],
    *,
    namespace: str,
    versions: Mapping[str, str],
) -> SpanWatch | None:
    """The first trace check of the objects' Canary, rendered for each version; None without.

    `versions` maps each version label to its subset (`v1` to `v1`).
    """
    templates = {
        (body["metadata"].get("namespace") or namespace, body["metadata"]["name"]): body
        for body in bodies
        if body.get("kind") == "MetricTemplate"
    }
    canary = next(Canary.model_validate(b) for b in bodies if b.get("kind") == "Canary")
    key = CanaryKey(canary.metadata.namespace or namespace, canary.metadata.name)
    for metric in canary.spec.analysis.metrics:
        ref = metric.template_ref
        if ref is None:
            continue
        body = templates.get((ref.namespace or namespace, ref.name))
        jaeger = ((body or {}).get("spec") or {}).get("provider", {}).get("jaeger")
        if jaeger is None:
            continue
        backend = JaegerProvider.model_validate(jaeger)
        values, _ = queries.variables(key, canary.spec, metric)
        window = durations.seconds(metric.interval)
        now = datetime.now(UTC)
        try:
            # The check's own question (controller/traces.py), asked for each version.
            asked = {
                version: span_query(
                    backend, {**values, "subset": subset, "version": version}, window, now
                )
                for version, subset in versions.items()
            }
        except templating.TemplateError:
            return None
        if not asked:
            return None
        any_version = next(iter(asked.values()))
        return SpanWatch(
            check=metric.name,
            service=any_version.service,
            operation=any_version.operation,
            backend=backend,
            tags={version: query.tags for version, query in asked.items()},
            window_s=window,
            threshold_max=(metric.threshold_range.max if metric.threshold_range else None),
        )
    return None


class MeshJaeger:
    """On the local mesh a trace template's Jaeger is the mesh's own, as its Prometheus is: the
    Envoys' spans are there. Said once per other address. Without a local Jaeger, every trace
    check is an error naming the missing Jaeger, never a pass."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._said: set[str] = set()
        self._traces = JaegerTraces(url or "http://127.0.0.1:9")

    def __call__(self, backend: JaegerProvider, namespace: str) -> JaegerTraces:
        if backend.address.rstrip("/") != self.url and backend.address not in self._said:
            self._said.add(backend.address)
            log.info("demo.jaeger_replaced", asked=backend.address, answered_by=self.url)
        return self._traces
