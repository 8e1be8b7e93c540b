"""`canary.controller.queries`: a query with a spelling that is not ours is InvalidSpec, never
sent. The MetricTemplate model already refuses one (so the store's parse makes the Canary
Invalid); this is the second line, for a template that reached the controller some other way."""

from __future__ import annotations

import pytest

from canary.api import builtins
from canary.api.metric_template import MetricTemplate, MetricTemplateSpec
from canary.api.spec import CanarySpec
from canary.controller import queries
from canary.errors import InvalidSpec
from canary.fakes import FakeStore
from canary.ports import CanaryKey

SPEC = CanarySpec.model_validate(
    {
        "service": {"host": "web"},
        "stable": {"subset": "v1"},
        "canary": {"subset": "v2"},
        "analysis": {
            "stepWeights": [50],
            "metrics": [
                {
                    "name": "budget",
                    "templateRef": {"name": "budget"},
                    "templateVariables": {"slo": "0.99"},
                    "thresholdRange": {"max": 1},
                }
            ],
        },
    }
)


def _store(query: str) -> FakeStore:
    valid = MetricTemplate.model_validate(
        {
            "metadata": {"name": "budget", "namespace": "shop"},
            "spec": {"provider": {"prometheus": {"address": "http://p:9090"}}, "query": "up"},
        }
    )
    # model_copy skips validation: the text the model would refuse reaches the controller.
    spec: MetricTemplateSpec = valid.spec.model_copy(update={"query": query})
    return FakeStore(templates={("shop", "budget"): valid.model_copy(update={"spec": spec})})


def _resolve(store: FakeStore) -> queries.ResolvedQuery:
    return queries.resolve(
        CanaryKey("shop", "web"),
        SPEC,
        SPEC.analysis.metrics[0],
        store=store,
        query_set=builtins.QuerySet.ISTIO,
    )


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("x{s='{{ variables.slo }}'}", "{{ variables.slo }} is Flagger's spelling"),
        ("x{s='{{args.slo}}'}", "{{args.slo}} is Argo Rollouts' spelling"),
        ("x{s='{{ .Values.slo }}'}", "Go template (Helm)"),
    ],
)
def test_another_spelling_is_invalid_spec_naming_the_metric(query: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        _resolve(_store(query))
    assert str(caught.value).startswith("spec.analysis.metrics[budget]: ")
    assert words in str(caught.value)


def test_ours_with_odd_spacing_renders() -> None:
    resolved = _resolve(_store("x{s='{{slo }}',n='{{  namespace}}'}"))
    assert resolved.query == "x{s='0.99',n='shop'}"
