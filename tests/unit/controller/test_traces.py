from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from canary.api import builtins
from canary.api.metric_template import MetricTemplate
from canary.api.spec import CanarySpec
from canary.api.status import MeasurementKind
from canary.api.traces import JaegerProvider
from canary.controller import queries
from canary.controller.queries import ResolvedQuery
from canary.controller.traces import SpanCheck
from canary.engine.spans import Span
from canary.errors import InvalidSpec, Unavailable
from canary.fakes import FakeStore
from canary.ports import CanaryKey, SpanQuery, SpanSample

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CANARY = {"service": "shop", "subset": "v2", "version": "v2", "interval": "1m", "op": "/checkout"}
STABLE = {**CANARY, "subset": "v1", "version": "v1"}


@dataclass
class Answers:
    by_version: dict[str, SpanSample | Exception] = field(default_factory=dict)
    asked: list[SpanQuery] = field(default_factory=list)

    def spans(self, query: SpanQuery) -> SpanSample:
        self.asked.append(query)
        answer = self.by_version.get(query.tags["subset"], SpanSample((), 0, False))
        if isinstance(answer, Exception):
            raise answer
        return answer


def backend(**overrides: Any) -> JaegerProvider:
    values: dict[str, Any] = {
        "address": "http://jaeger:16686",
        "operation": "POST {{ op }}",
        "versionTag": "subset",
        "versionValue": "{{ subset }}",
        "compute": "latency",
        "percentile": 99,
        "minSpans": 3,
        **overrides,
    }
    return JaegerProvider.model_validate(values)


def sample(*durations: float, errors: int = 0, truncated: bool = False) -> SpanSample:
    spans = tuple(
        Span(trace_id=f"{index:032x}", duration_ms=value, error=index < errors)
        for index, value in enumerate(durations)
    )
    return SpanSample(spans=spans, traces=len(spans), truncated=truncated)


def question() -> ResolvedQuery:
    return ResolvedQuery(
        query="",
        requests_query=None,
        template=None,
        variables=CANARY,
        stable_variables=STABLE,
        window=60.0,
    )


def test_the_canary_spans_of_the_window_are_asked_for_and_judged() -> None:
    answers = Answers({"v2": sample(10, 20, 300, 40)})
    measured = SpanCheck(answers, backend()).measure(question(), NOW)
    assert measured.kind is MeasurementKind.VALUE
    assert measured.value == 300.0
    (asked,) = answers.asked
    assert asked.service == "shop"
    assert asked.operation == "POST /checkout"
    assert asked.tags == {"subset": "v2"}
    assert (asked.start, asked.end) == (NOW - timedelta(minutes=1), NOW)
    assert measured.spans is not None
    assert measured.spans.spans == 4
    assert measured.spans.examples[0] == f"{2:032x}"
    assert "p99 duration of shop 'POST /checkout' where subset=v2" in measured.query


def test_too_few_spans_is_no_data_that_says_how_many() -> None:
    measured = SpanCheck(Answers({"v2": sample(10, 20)}), backend()).measure(question(), NOW)
    assert measured.kind is MeasurementKind.NO_DATA
    assert "2 spans of 'POST /checkout' with subset=v2" in measured.message
    assert "fewer than minSpans 3" in measured.message
    assert measured.spans is not None
    assert measured.spans.spans == 2


def test_no_spans_at_all_is_no_data() -> None:
    measured = SpanCheck(Answers(), backend()).measure(question(), NOW)
    assert measured.kind is MeasurementKind.NO_DATA
    assert "no spans of shop 'POST /checkout' with subset=v2 in the last 1m" in measured.message


def test_a_backend_down_is_an_error_never_a_value() -> None:
    answers = Answers({"v2": Unavailable("jaeger at http://jaeger:16686: connection refused")})
    measured = SpanCheck(answers, backend()).measure(question(), NOW)
    assert measured.kind is MeasurementKind.ERROR
    assert "connection refused" in measured.message


def test_a_comparison_asks_for_both_versions_and_records_both() -> None:
    answers = Answers({"v2": sample(1, 1, 1, 1, errors=2), "v1": sample(1, 1, 1, 1, errors=1)})
    check = SpanCheck(answers, backend(compute="errorRatio", percentile=None, compare="difference"))
    measured = check.measure(question(), NOW)
    assert measured.value == 25.0
    assert [query.tags["subset"] for query in answers.asked] == ["v2", "v1"]
    assert measured.spans is not None
    assert (measured.spans.canary_value, measured.spans.stable_value) == (50.0, 25.0)
    assert measured.spans.stable_spans == 4


def test_a_stable_version_with_too_few_spans_makes_a_comparison_no_data() -> None:
    answers = Answers({"v2": sample(1, 1, 1), "v1": sample(1)})
    measured = SpanCheck(answers, backend(compare="ratio")).measure(question(), NOW)
    assert measured.kind is MeasurementKind.NO_DATA
    assert "subset=v1" in measured.message


def test_a_truncated_answer_is_recorded_as_a_sample() -> None:
    answers = Answers({"v2": sample(1, 2, 3, truncated=True)})
    measured = SpanCheck(answers, backend()).measure(question(), NOW)
    assert measured.spans is not None
    assert measured.spans.sampled


def test_a_jaeger_template_takes_no_query_text_and_a_prometheus_one_needs_one() -> None:
    meta = {"name": "t", "namespace": "shop"}
    jaeger = backend().to_wire()
    MetricTemplate.model_validate({"metadata": meta, "spec": {"provider": {"jaeger": jaeger}}})
    with pytest.raises(pydantic.ValidationError, match="takes no query text"):
        MetricTemplate.model_validate(
            {"metadata": meta, "spec": {"provider": {"jaeger": jaeger}, "query": "up"}}
        )
    with pytest.raises(pydantic.ValidationError, match="needs a query"):
        MetricTemplate.model_validate(
            {"metadata": meta, "spec": {"provider": {"prometheus": {"address": "http://p:9090"}}}}
        )


def _template(**jaeger: Any) -> MetricTemplate:
    return MetricTemplate.model_validate(
        {
            "metadata": {"name": "spans", "namespace": "shop"},
            "spec": {"provider": {"jaeger": backend(**jaeger).to_wire()}},
        }
    )


def _canary(variables: dict[str, str]) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "shop.store.svc.cluster.local"},
            "stable": {"subset": "v1", "labels": {"version": "1.0"}},
            "canary": {"subset": "v2", "labels": {"version": "2.0"}},
            "analysis": {
                "stepWeights": [50],
                "metrics": [
                    {
                        "name": "checkout",
                        "templateRef": {"name": "spans"},
                        "interval": "2m",
                        "templateVariables": variables,
                        "thresholdRange": {"max": 300},
                    }
                ],
            },
        }
    )


def test_a_trace_template_resolves_with_both_versions_and_its_window() -> None:
    store = FakeStore(templates={("store", "spans"): _template(versionValue="{{ version }}")})
    spec = _canary({"op": "/checkout"})
    resolved = queries.resolve(
        CanaryKey("store", "shop"),
        spec,
        spec.analysis.metrics[0],
        store=store,
        query_set=builtins.QuerySet.ISTIO,
    )
    assert resolved.window == 120.0
    assert resolved.variables["version"] == "2.0"
    assert resolved.stable_variables["version"] == "1.0"
    assert resolved.stable_variables["subset"] == "v1"
    # After a promotion the stable subset is the status's, and its name stands for its version.
    promoted = queries.resolve(
        CanaryKey("store", "shop"),
        spec,
        spec.analysis.metrics[0],
        store=store,
        query_set=builtins.QuerySet.ISTIO,
        stable_subset="v0",
    )
    assert (promoted.stable_variables["subset"], promoted.stable_variables["version"]) == (
        "v0",
        "v0",
    )


def test_a_variable_nobody_set_in_a_trace_template_is_invalid_before_any_query() -> None:
    store = FakeStore(templates={("store", "spans"): _template()})
    spec = _canary({})
    with pytest.raises(InvalidSpec, match="unknown template variable"):
        queries.resolve(
            CanaryKey("store", "shop"),
            spec,
            spec.analysis.metrics[0],
            store=store,
            query_set=builtins.QuerySet.ISTIO,
        )
