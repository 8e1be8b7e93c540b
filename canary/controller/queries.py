"""Turning a Canary's metric into the query text sent to the provider.

A built-in metric takes its query from the query set the controller was started with (Istio's
standard metrics in a cluster, plain Envoy stats on the local mesh); a template metric takes it
from its MetricTemplate. Either way the variables are resolved here, strictly: a template naming
a variable nobody set is an InvalidSpec, not a query that silently matches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.api import builtins, templating
from canary.api.metric_template import MetricTemplate
from canary.api.metrics import MetricCheck
from canary.api.spec import CanarySpec
from canary.errors import InvalidSpec
from canary.ports import CanaryKey, Store


@dataclass(frozen=True, slots=True)
class ResolvedQuery:
    query: str
    requests_query: str | None
    # The template, whose provider runs the query; None for a built-in (the controller's own
    # Prometheus).
    template: MetricTemplate | None


def resolve(
    key: CanaryKey,
    spec: CanarySpec,
    metric: MetricCheck,
    *,
    store: Store,
    query_set: builtins.QuerySet,
) -> ResolvedQuery:
    values = {
        "namespace": key.namespace,
        "service": spec.service.host.split(".")[0],
        "subset": spec.canary.subset,
        "version": spec.canary.version,
        "interval": metric.interval,
        **metric.template_variables,
    }
    if metric.template_ref is None:
        builtin = builtins.QUERIES[query_set][metric.name]
        return ResolvedQuery(
            query=_render(metric, builtin.query, values),
            requests_query=_render(metric, builtin.requests, values),
            template=None,
        )
    namespace = metric.template_ref.namespace or key.namespace
    template = store.metric_template(namespace, metric.template_ref.name)
    if template is None:
        raise InvalidSpec(
            f"spec.analysis.metrics[{metric.name}].templateRef: MetricTemplate "
            f"{namespace}/{metric.template_ref.name} not found"
        )
    requests = template.spec.requests_query
    return ResolvedQuery(
        query=_render(metric, template.spec.query, values),
        requests_query=_render(metric, requests, values) if requests else None,
        template=template,
    )


def _render(metric: MetricCheck, text: str, values: dict[str, str]) -> str:
    try:
        return templating.render(text, values)
    except templating.TemplateError as exc:
        raise InvalidSpec(f"spec.analysis.metrics[{metric.name}]: {exc}") from exc
