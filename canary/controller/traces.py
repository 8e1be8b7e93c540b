"""A trace check as evidence: a template's `jaeger` question asked of a `TraceSource`.

The template's fields are rendered with the canary's variables (and the stable's, to compare),
the spans of the check's window fetched through the port, and the value computed by the engine
(engine/spans.py). Too few spans is no data, never a pass; a backend down, slow or answering
garbage is an error; either way the rollout never advances on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.api import durations, templating
from canary.api.traces import JaegerProvider, SpanEvidence
from canary.controller.queries import ResolvedQuery
from canary.controller.sources import Evidence, EvidenceFactory
from canary.engine import spans as computed
from canary.engine.observation import Measurement
from canary.errors import CanaryError
from canary.ports import SpanQuery, SpanSample, TraceSource

TraceFactory = Callable[[JaegerProvider, str], TraceSource]


def spans_of(factory: TraceFactory) -> EvidenceFactory:
    """The table entry of a trace backend whose adapter makes a `TraceSource`."""

    def make(backend: JaegerProvider, namespace: str) -> Evidence:
        return SpanCheck(factory(backend, namespace), backend)

    return make


@dataclass(frozen=True, slots=True)
class SpanCheck:
    source: TraceSource
    backend: JaegerProvider

    def measure(self, query: ResolvedQuery, now: datetime) -> Measurement:
        try:
            canary_query = span_query(self.backend, query.variables, query.window, now)
            stable_query = (
                span_query(self.backend, query.stable_variables, query.window, now)
                if self.backend.compare is not None
                else None
            )
        except templating.TemplateError as exc:
            return Measurement.error(f"jaeger: {exc}")
        asked = _described(canary_query, self.backend)
        try:
            canary = self.source.spans(canary_query)
            stable = None if stable_query is None else self.source.spans(stable_query)
        except CanaryError as exc:
            return Measurement.error(f"jaeger: {exc}", query=asked)
        backend = self.backend
        evidence = SpanEvidence(
            operation=canary_query.operation,
            spans=len(canary.spans),
            sampled=canary.truncated or (stable is not None and stable.truncated),
            examples=computed.worst(canary.spans, backend.compute),
            stable_spans=None if stable is None else len(stable.spans),
        )
        window = query.variables.get("interval") or f"{query.window:g}s"
        short = _short_of(canary, canary_query, backend, window)
        if stable is not None and stable_query is not None:
            short = short or _short_of(stable, stable_query, backend, window)
        if short:
            return Measurement.no_data(query=asked, message=short, spans=evidence)
        value = computed.value_of(canary.spans, backend.compute, backend.percentile)
        if stable is None or backend.compare is None:
            return Measurement.of(value, query=asked, spans=evidence)
        stable_value = computed.value_of(stable.spans, backend.compute, backend.percentile)
        evidence = evidence.model_copy(update={"canary_value": value, "stable_value": stable_value})
        return Measurement.of(
            computed.compared(value, stable_value, backend.compare), query=asked, spans=evidence
        )


def span_query(
    backend: JaegerProvider, variables: Mapping[str, str], window: float, now: datetime
) -> SpanQuery:
    """The template's question for one version (its `variables`), over `window` seconds to
    `now`. Raises templating.TemplateError for a variable nobody set."""
    tags = {name: templating.render(value, variables) for name, value in backend.tags.items()}
    tags[backend.version_tag] = templating.render(backend.version_value, variables)
    return SpanQuery(
        service=templating.render(backend.service, variables),
        operation=templating.render(backend.operation, variables),
        tags=tags,
        start=now - timedelta(seconds=window),
        end=now,
        limit=backend.limit,
        timeout=durations.seconds(backend.timeout),
    )


def _described(query: SpanQuery, backend: JaegerProvider) -> str:
    """The question as a person reads it in the status (the `query` of the check's record)."""
    tags = " ".join(f"{name}={value}" for name, value in sorted(query.tags.items()))
    what = "error ratio" if backend.percentile is None else f"p{backend.percentile:g} duration"
    versus = f", {backend.compare} vs stable" if backend.compare is not None else ""
    return f"jaeger {what} of {query.service} {query.operation!r} where {tags}{versus}"


def _short_of(sample: SpanSample, query: SpanQuery, backend: JaegerProvider, window: str) -> str:
    version = query.tags[backend.version_tag]
    found = len(sample.spans)
    if found == 0:
        return (
            f"no spans of {query.service} {query.operation!r} with "
            f"{backend.version_tag}={version} in the last {window}"
        )
    if found < backend.min_spans:
        return (
            f"{found} spans of {query.operation!r} with {backend.version_tag}={version} in the "
            f"last {window}, fewer than minSpans {backend.min_spans}"
        )
    return ""
