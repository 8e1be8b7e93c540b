"""Turning a Canary's metric into the query text sent to the provider.

A built-in metric takes its query from the query set the controller was started with (Istio's
standard metrics in a cluster, plain Envoy stats on the local mesh); a template metric takes it
from its MetricTemplate. Either way the variables are resolved here, strictly: a template naming
a variable nobody set, or spelling one another tool's way (`{{ variables.x }}`, `{{args.x}}`,
`{{ .Values.x }}`: `canary.api.templating`), is an InvalidSpec, not a query that silently
matches nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from canary.api import builtins, durations, templating
from canary.api.metric_template import MetricTemplate
from canary.api.metrics import MetricCheck
from canary.api.spec import CanarySpec
from canary.errors import InvalidSpec
from canary.ports import CanaryKey, Store


@dataclass(frozen=True, slots=True)
class ResolvedQuery:
    """One metric check's question, every variable known: a backend with a query text is asked
    `query`; one whose question lies in its provider sub-model (a trace check) renders its
    fields with `variables`, and with `stable_variables` to ask the same of the stable version,
    as a comparing check renders its counts for each side (controller/counts.py)."""

    query: str
    requests_query: str | None
    # The template, whose provider runs the query; None for a built-in (the controller's own
    # Prometheus).
    template: MetricTemplate | None
    variables: Mapping[str, str] = field(default_factory=dict)
    stable_variables: Mapping[str, str] = field(default_factory=dict)
    # The check's window (its `interval`), in seconds.
    window: float = 60.0


def resolve(
    key: CanaryKey,
    spec: CanarySpec,
    metric: MetricCheck,
    *,
    store: Store,
    query_set: builtins.QuerySet,
    stable_subset: str = "",
) -> ResolvedQuery:
    """`stable_subset`: the subset the rollout treats as stable now (the status's, once a
    release was promoted), which a template comparing with the stable version asks about."""
    values, stable_values = variables(key, spec, metric, stable_subset=stable_subset)
    if metric.template_ref is None:
        builtin = builtins.QUERIES[query_set][metric.name]
        return ResolvedQuery(
            query=_render(metric, builtin.query, values),
            requests_query=_render(metric, builtin.requests, values),
            template=None,
            variables=values,
            stable_variables=stable_values,
        )
    namespace = metric.template_ref.namespace or key.namespace
    template = store.metric_template(namespace, metric.template_ref.name)
    if template is None:
        raise InvalidSpec(
            f"spec.analysis.metrics[{metric.name}].templateRef: MetricTemplate "
            f"{namespace}/{metric.template_ref.name} not found"
        )
    problem = template.spec.comparison_problem() if metric.compare is not None else ""
    if problem:
        # Checked here too, not only by `canary validate`: a template that cannot name the
        # side would count the same requests for both, a comparison that proves nothing.
        raise InvalidSpec(
            f"spec.analysis.metrics[{metric.name}].compare: MetricTemplate {namespace}/"
            f"{metric.template_ref.name} cannot be compared with stable: {problem}"
        )
    requests = template.spec.requests_query
    # A backend's own texts (a trace check's operation, tags...) are rendered when it measures;
    # rendering them now too makes a variable nobody set Invalid before the first write.
    for text in template.spec.backend_templated():
        _render(metric, text, values)
    return ResolvedQuery(
        query=_render(metric, template.spec.query or "", values),
        requests_query=_render(metric, requests, values) if requests else None,
        template=template,
        variables=values,
        stable_variables=stable_values,
        window=durations.seconds(metric.interval),
    )


def variables(
    key: CanaryKey, spec: CanarySpec, metric: MetricCheck, *, stable_subset: str = ""
) -> tuple[dict[str, str], dict[str, str]]:
    """The values a metric's templates are rendered with, for the canary and for the stable
    version (`stable_subset`, default spec.stable's)."""
    values = {
        "namespace": key.namespace,
        "service": spec.service.host.split(".")[0],
        "subset": spec.canary.subset,
        "version": spec.canary.version,
        "interval": metric.interval,
        **metric.template_variables,
    }
    stable = stable_subset or spec.stable.subset
    # A subset promoted since spec.stable was written has no labels here: its name stands in
    # for its version, as a Variant without a version label does.
    stable_version = spec.stable.version if stable == spec.stable.subset else stable
    return values, {**values, "subset": stable, "version": stable_version}


def _render(metric: MetricCheck, text: str, values: dict[str, str]) -> str:
    try:
        return templating.render(text, values)
    except templating.TemplateError as exc:
        raise InvalidSpec(f"spec.analysis.metrics[{metric.name}]: {exc}") from exc
