"""Where each kind of evidence comes from: one port per source, chosen by the provider's type.

A metric check either is a built-in (measured by the controller's own Prometheus, with the
query set it runs with) or names a MetricTemplate whose `provider` has exactly one backend
sub-model set. The backend's type picks an `Evidence` factory from `metrics`, a table the
composition root fills (cluster/run.py, demo/run.py): a query backend's port (`MetricsProvider`)
goes in through `promql`, a trace backend's (`TraceSource`) through `traces.spans_of`. Adding a
backend is one sub-model in api/metric_template.py, one adapter, and one entry in that table,
never a branch here. A backend this controller has no adapter for makes the Canary Invalid
rather than being asked of Prometheus. Webhook gates have their port too (`WebhookCaller`);
approvals are commands, not a source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from canary.api.metric_template import MetricTemplate
from canary.controller.queries import ResolvedQuery
from canary.engine.observation import Measurement
from canary.errors import InvalidSpec
from canary.ports import MetricsProvider, Secrets, WebhookCaller


class Evidence(Protocol):
    """One backend's answer to one metric check's question; never raises (a backend down is
    a Measurement of kind error)."""

    def measure(self, query: ResolvedQuery, now: datetime) -> Measurement: ...


# Makes the evidence source for one backend sub-model, given the namespace its Secrets live in.
EvidenceFactory = Callable[[Any, str], Evidence]
MetricsFactory = Callable[[Any, str], MetricsProvider]


@dataclass(frozen=True, slots=True)
class PromQL:
    """A query backend as evidence: the rendered query text, and its request count beside."""

    provider: MetricsProvider

    def measure(self, query: ResolvedQuery, now: datetime) -> Measurement:
        return self.provider.measure(query.query, requests_query=query.requests_query)


def promql(factory: MetricsFactory) -> EvidenceFactory:
    """The table entry of a query backend whose adapter makes a `MetricsProvider`."""
    return lambda backend, namespace: PromQL(factory(backend, namespace))


@dataclass
class Sources:
    # The controller's own Prometheus: built-in checks and the chaos verdicts.
    builtin: MetricsProvider
    webhooks: WebhookCaller
    secrets: Secrets
    # Backend sub-model type -> the factory of its evidence source.
    metrics: Mapping[type, EvidenceFactory] = field(default_factory=dict)

    def metrics_for(self, template: MetricTemplate | None) -> Evidence:
        if template is None:
            return PromQL(self.builtin)
        provider = template.spec.provider
        backend = provider.backend
        factory = self.metrics.get(type(backend))
        meta = template.metadata
        if factory is None:
            known = ", ".join(sorted(getattr(kind, "__name__", str(kind)) for kind in self.metrics))
            raise InvalidSpec(
                f"MetricTemplate {meta.namespace}/{meta.name}: provider {provider.kind} has no "
                f"adapter in this controller (it has: {known or 'none'})"
            )
        return factory(backend, meta.namespace or "default")
