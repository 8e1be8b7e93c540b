"""`canary.api.templating`: every `{{ ... }}` is one of ours or an error with a hint."""

from __future__ import annotations

import pydantic
import pytest

from canary.api import templating
from canary.api.metric_template import MetricTemplate
from canary.api.traces import JaegerProvider

# (text, the words of its one problem)
FOREIGN = [
    ("{{ variables.slo }}", "{{ variables.slo }} is Flagger's spelling; ours is {{ slo }}"),
    ("{{variables.slo}}", "{{variables.slo}} is Flagger's spelling; ours is {{ slo }}"),
    (
        "{{args.service-name}}",
        "{{args.service-name}} is Argo Rollouts' spelling; ours is {{ service_name }}, with "
        "service_name in the metric's templateVariables",
    ),
    ("{{ args.namespace }}", "is Argo Rollouts' spelling; ours is {{ namespace }}"),
    ("{{ .Values.service }}", "{{ .Values.service }} is a Go template (Helm) expression"),
    ("{{ .namespace }}", "is a Go template (Helm) expression, left unrendered"),
    ("{{- namespace -}}", "{{- namespace -}}: trim markers are Go template's"),
    ("{{ service-name }}", "not a variable name (letters, digits and _ only); did you mean"),
    ("{{ }}", "{{ }} names no variable"),
    ("{{}}", "{{}} names no variable"),
    ("{{ namespace | quote }}", "is not a variable of ours (we substitute {{ name }} only"),
    ('{{ "x" }}', "is not a variable of ours"),
    ("up{a='{{ namespace }'}", "a {{ is never closed by }}"),
]


@pytest.mark.parametrize(("text", "words"), FOREIGN)
def test_other_spellings_are_one_problem_each_and_render_refuses_them(
    text: str, words: str
) -> None:
    [problem] = templating.problems(text)
    assert words in problem
    assert templating.variables(text) == frozenset()
    with pytest.raises(templating.TemplateError, match="^" + problem.replace("{", "\\{")[:20]):
        templating.render(text, {"namespace": "shop", "slo": "0.99", "service_name": "web"})


@pytest.mark.parametrize(
    "text",
    [
        "{{namespace}}",
        "{{ namespace}}",
        "{{namespace }}",
        "{{\tnamespace\n}}",
        "{{  namespace   }}",
    ],
)
def test_ours_with_any_spacing_inside_the_braces(text: str) -> None:
    assert templating.problems(text) == []
    assert templating.variables(text) == {"namespace"}
    assert templating.render(f"a{text}b", {"namespace": "shop"}) == "ashopb"


def test_a_brace_before_ours_stays_a_literal_brace() -> None:
    text = "up{{{ selector }}} / up{job='{{ job }}'}"
    assert templating.problems(text) == []
    assert templating.variables(text) == {"selector", "job"}
    assert templating.render(text, {"selector": 'a="b"', "job": "j"}) == "up{a=\"b\"} / up{job='j'}"


def test_every_problem_of_a_text_is_named() -> None:
    assert len(templating.problems("{{ variables.a }} {{ ok }} {{ args.b }}")) == 2


def _template(**spec: object) -> dict[str, object]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": "t", "namespace": "shop"},
        "spec": {"provider": {"prometheus": {"address": "http://p:9090"}}, **spec},
    }


def test_a_metric_template_refuses_other_spellings_naming_the_field() -> None:
    """So `canary validate` reports it, and the controller's store makes the Canary Invalid."""
    with pytest.raises(pydantic.ValidationError, match="Flagger's spelling") as caught:
        MetricTemplate.model_validate(
            _template(query="x", requestsQuery="sum(x{a='{{ variables.b }}'})")
        )
    assert caught.value.errors()[0]["msg"].startswith("Value error, requestsQuery: ")


def test_a_trace_template_refuses_other_spellings_naming_the_field() -> None:
    fields = {
        "address": "http://jaeger:16686",
        "service": "web",
        "operation": "POST {{args.op}}",
        "versionTag": "subset",
        "versionValue": "{{ subset }}",
        "compute": "errorRatio",
    }
    with pytest.raises(pydantic.ValidationError, match=r"operation: \{\{args.op\}\} is Argo"):
        JaegerProvider.model_validate(fields)
