"""`canary.validation.templates`: template metrics against the MetricTemplates they name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.validation.documents import analysis, canary, messages, metric_template

BUDGET_QUERY = "errors{service='{{ service }}'}[{{ interval }}] / (1 - {{ slo }}) * {{ scale }}"


def _uses(name: str = "errors", **metric: Any) -> dict[str, Any]:
    check = {"name": "budget", "templateRef": {"name": name}, "thresholdRange": {"max": 1}}
    return canary(analysis=analysis(metrics=[{**check, **metric}]))


def test_a_template_with_its_variables_given_has_no_findings(tmp_path: Path) -> None:
    template = metric_template(query=BUDGET_QUERY, requestsQuery="sum(requests)")
    document = _uses(templateVariables={"slo": "0.999", "scale": "1"}, minRequests=10)
    assert messages(tmp_path, document, template) == []


def test_a_template_not_in_the_paths_is_fine_when_none_are(tmp_path: Path) -> None:
    """It may live in the cluster: with no MetricTemplate given, nothing can be said."""
    assert messages(tmp_path, _uses("elsewhere")) == []


def test_a_missing_template_is_reported_when_others_are_given(tmp_path: Path) -> None:
    found = messages(tmp_path, _uses("erors"), metric_template())
    assert found == [
        "Canary shop/web spec.analysis.metrics[0].templateRef: MetricTemplate shop/erors not "
        "found (in shop: errors)"
    ]


def test_the_template_is_looked_up_in_the_namespace_its_ref_names(tmp_path: Path) -> None:
    document = _uses()
    document["spec"]["analysis"]["metrics"][0]["templateRef"]["namespace"] = "platform"
    assert messages(tmp_path, document, metric_template(namespace="platform")) == []


def test_every_custom_variable_must_be_given(tmp_path: Path) -> None:
    found = messages(
        tmp_path,
        _uses(templateVariables={"slow": "0.999"}),
        metric_template(query=BUDGET_QUERY),
    )
    assert found == [
        "Canary shop/web spec.analysis.metrics[0].templateVariables: MetricTemplate shop/errors "
        "needs scale, slo (its queries use {{ scale }} {{ slo }}); given: slow"
    ]


def test_min_requests_needs_the_templates_requests_query(tmp_path: Path) -> None:
    """Without a request count the guard could never pass: every check would be inconclusive."""
    found = messages(tmp_path, _uses(minRequests=100), metric_template())
    assert len(found) == 1
    assert found[0].startswith(
        "Canary shop/web spec.analysis.metrics[0].minRequests: MetricTemplate shop/errors has "
        "no requestsQuery, so"
    )
    assert "could never pass" in found[0]


def test_flagger_and_argo_spellings_are_one_line_naming_the_field(tmp_path: Path) -> None:
    """They would reach Prometheus unrendered; the template's document gets the line."""
    flagger = metric_template(query="errors{a='{{ variables.slo }}'}")
    argo = metric_template("argo", requestsQuery="sum(x{s='{{args.service-name}}'})")
    assert messages(tmp_path, flagger, argo) == [
        "spec.query: {{ variables.slo }} is Flagger's spelling; ours is {{ slo }}, with slo in "
        "the metric's templateVariables",
        "spec.requestsQuery: {{args.service-name}} is Argo Rollouts' spelling; ours is "
        "{{ service_name }}, with service_name in the metric's templateVariables",
    ]


def test_flaggers_target_is_named_with_ours(tmp_path: Path) -> None:
    template = metric_template(query="errors{workload='{{ target }}'}")
    [line] = messages(tmp_path, _uses(), template)
    assert line.endswith("given: none (Flagger's {{ target }} is our {{ service }})"), line


def test_a_template_variable_no_template_could_use_is_named(tmp_path: Path) -> None:
    """Argo's `args` allow dashes; ours are names, so `service-name` could never be used."""
    template = metric_template(query="x{s='{{ service_name }}'}")
    found = messages(
        tmp_path, _uses(templateVariables={"service-name": "web", "service_name": "web"}), template
    )
    assert found == [
        "Canary shop/web spec.analysis.metrics[0].templateVariables.service-name: no template "
        "can use {{ service-name }}: a variable's name is letters, digits and _ (e.g. service_name)"
    ]


def test_a_comparison_needs_a_template_that_can_be_asked_for_stable(tmp_path: Path) -> None:
    """Compared with stable, the query counts bad events and requestsQuery requests, once per
    side: a query that names no side could only ever count the canary's (or everyone's)."""
    comparing = _uses(compare={"alpha": 0.01})
    del comparing["spec"]["analysis"]["metrics"][0]["thresholdRange"]
    found = messages(tmp_path, comparing, metric_template(requestsQuery="sum(requests)"))
    assert found == [
        "Canary shop/web spec.analysis.metrics[0].compare: MetricTemplate shop/errors cannot be "
        "compared with stable: query: uses neither {{ subset }} nor {{ version }}, so it cannot "
        "be asked for the stable side"
    ]
    per_side = metric_template(
        query="sum(errors{version='{{ version }}'})",
        requestsQuery="sum(requests{version='{{ version }}'})",
    )
    assert messages(tmp_path, comparing, per_side) == []
    # The comparison counts over its own exact window: a windowed increase means nothing there.
    windowed = metric_template(
        query="sum(increase(errors{version='{{ version }}'}[{{ interval }}]))",
        requestsQuery="sum(requests{version='{{ version }}'})",
    )
    assert [line.split(": ", 2)[2] for line in messages(tmp_path, comparing, windowed)] == [
        "query: a comparison counts over its own exact window, so it needs a cumulative count "
        '(e.g. sum(errors_total{version="{{ version }}"})); drop rate()/increase() and '
        "{{ interval }}"
    ]
