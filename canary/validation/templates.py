"""Check a Canary's template metrics against the MetricTemplates they reference.

A template that is missing, or a variable nobody set, would otherwise surface only as a stuck
rollout or an empty query (argo-rollouts#713, flagger#1365). Rules:
- The template is looked up in `templateRef.namespace`, default the Canary's namespace. If the
  paths hold no MetricTemplate at all, it is assumed to live in the cluster and nothing is said;
  if they hold some but not this one, that is a finding listing the ones seen.
- Every custom variable of the template (`MetricTemplateSpec.custom_variables`) must be given
  in the metric's `templateVariables`.
- A spelling of Flagger's or Argo Rollouts' (`{{ variables.x }}`, `{{args.x}}`) is refused by the
  MetricTemplate model itself (`canary.api.templating`); Flagger's own `{{ target }}` is a plain
  name, so it shows up here as a variable nobody set, with what to write instead.
- `minRequests` needs the template's `requestsQuery`: without it the count is never known, so
  the guard could never pass and every check would be inconclusive. A trace template counts
  spans instead (`minSpans`), so `minRequests` there is a finding too.
"""

from __future__ import annotations

from canary.api import templating
from canary.api.metric_template import QUERY_BACKENDS, STANDARD_VARIABLES
from canary.api.resources import Canary
from canary.validation.findings import About
from canary.validation.inventory import Index, model_key, not_found


def check(about: About, canary: Canary, index: Index) -> None:
    for position, metric in enumerate(canary.spec.analysis.metrics):
        ref = metric.template_ref
        if ref is None:
            continue
        path = f"spec.analysis.metrics[{position}]"
        for name in sorted(metric.template_variables):
            if not templating.is_name(name):
                # Argo's `args` allow dashes; a template could never use this one.
                about.add(
                    f"{path}.templateVariables.{name}",
                    f"no template can use {{{{ {name} }}}}: a variable's name is letters, digits "
                    f"and _ (e.g. {templating.our_name(name)})",
                )
        key = (ref.namespace or model_key(canary)[0], ref.name)
        placed = index.templates.get(key)
        if placed is None:
            if index.templates:
                about.add(
                    f"{path}.templateRef", f"MetricTemplate {not_found(key, index.templates)}"
                )
            continue
        template = f"MetricTemplate {key[0]}/{key[1]}"
        needed = placed.obj.spec.custom_variables() - metric.template_variables.keys()
        if needed:
            names = sorted(needed)
            uses = " ".join("{{ " + name + " }}" for name in names)
            given = ", ".join(sorted(metric.template_variables)) or "none"
            about.add(
                f"{path}.templateVariables",
                f"{template} needs {', '.join(names)} (its queries use {uses}); given: {given}"
                + _flagger(needed),
            )
        problem = placed.obj.spec.comparison_problem() if metric.compare else ""
        if problem:
            about.add(f"{path}.compare", f"{template} cannot be compared with stable: {problem}")
        counts_spans = placed.obj.spec.provider.kind not in QUERY_BACKENDS
        if metric.min_requests is not None and counts_spans:
            kind = placed.obj.spec.provider.kind
            about.add(
                f"{path}.minRequests",
                f"{template} judges spans, not requests: its provider.{kind}.minSpans is the "
                "guard; drop minRequests",
            )
        elif metric.min_requests is not None and placed.obj.spec.requests_query is None:
            about.add(
                f"{path}.minRequests",
                f"{template} has no requestsQuery, so the request count is never known and the "
                "guard could never pass; add a requestsQuery to the template or drop minRequests",
            )


# Flagger's built-in variables that are plain names, and ours that say the same.
_FLAGGER_NAMES = {"target": "service"}


def _flagger(needed: frozenset[str] | set[str]) -> str:
    hints = [
        f"Flagger's {{{{ {name} }}}} is our {{{{ {ours} }}}}"
        for name, ours in sorted(_FLAGGER_NAMES.items())
        if name in needed and ours in STANDARD_VARIABLES
    ]
    return f" ({'; '.join(hints)})" if hints else ""
