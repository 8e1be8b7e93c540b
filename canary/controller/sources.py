"""Where each kind of evidence comes from: one port per source, chosen by the provider's type.

A metric check either is a built-in (measured by the controller's own Prometheus, with the
query set it runs with) or names a MetricTemplate whose `provider` has exactly one backend
sub-model set. The backend's type picks the adapter from `metrics`, a table the composition
root fills (cluster/run.py, demo/run.py): adding a backend is one sub-model in
api/metric_template.py, one adapter, and one entry in that table, never a branch here. A
backend this controller has no adapter for makes the Canary Invalid rather than being asked of
Prometheus. Webhook gates have their port too (`WebhookCaller`); approvals and trace SLOs join
the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from canary.api.metric_template import MetricTemplate
from canary.errors import InvalidSpec
from canary.ports import MetricsProvider, Secrets, WebhookCaller

# Makes the provider for one backend sub-model, given the namespace its Secrets live in.
MetricsFactory = Callable[[Any, str], MetricsProvider]


@dataclass
class Sources:
    # The controller's own Prometheus: built-in checks and the chaos verdicts.
    builtin: MetricsProvider
    webhooks: WebhookCaller
    secrets: Secrets
    # Backend sub-model type -> the factory of its provider.
    metrics: Mapping[type, MetricsFactory] = field(default_factory=dict)

    def metrics_for(self, template: MetricTemplate | None) -> MetricsProvider:
        if template is None:
            return self.builtin
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
