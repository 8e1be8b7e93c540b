"""`compare: stable` on a metric check: what it accepts, and the one line each refusal gives."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from canary.api import problems
from canary.api.comparison import Comparison
from canary.api.metric_template import MetricTemplateSpec
from canary.api.spec import CanarySpec
from canary.api.status import MAX_COMPARISONS, CanaryStatus
from canary.engine import sequential


def _spec(metric: dict[str, Any], **analysis: Any) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "accounts"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {"stepWeights": [10, 50], "metrics": [metric], **analysis},
        }
    )


def _refusal(metric: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        _spec(metric)
    found = problems.lines(caught.value, CanarySpec)
    assert len(found) == 1, found
    return found[0]


def test_a_comparison_takes_the_defaults_and_needs_no_threshold() -> None:
    spec = _spec({"name": "request-success-rate", "compare": {}}, advanceEarly=True)
    compare = spec.analysis.metrics[0].compare
    assert compare is not None
    assert (compare.against, compare.alpha, compare.min_effect) == ("stable", 0.01, 1.5)
    assert spec.analysis.metrics[0].threshold_range is None
    assert spec.analysis.advance_early is True
    assert (
        _spec(
            {"name": "request-success-rate", "thresholdRange": {"min": 99}}
        ).analysis.advance_early
        is False
    )


def test_advance_early_needs_a_comparing_metric() -> None:
    with pytest.raises(ValidationError) as caught:
        _spec({"name": "request-success-rate", "thresholdRange": {"min": 99}}, advanceEarly=True)
    assert problems.lines(caught.value, CanarySpec) == [
        "analysis.advanceEarly: no metric compares with stable, so nothing could show a step "
        "good early; set compare on a metric or drop advanceEarly"
    ]


def test_a_comparison_may_stand_beside_a_threshold() -> None:
    metric = {"name": "request-success-rate", "thresholdRange": {"min": 95}, "compare": {}}
    assert _spec(metric).analysis.metrics[0].threshold_range is not None


def test_a_latency_comparison_counts_requests_over_a_bucket_bound() -> None:
    metric = {"name": "request-duration", "compare": {"slowerThan": "250ms", "minEffect": 2}}
    compare = _spec(metric).analysis.metrics[0].compare
    assert compare is not None
    assert compare.slower_than_seconds == 0.25


@pytest.mark.parametrize(
    ("metric", "words"),
    [
        ({"name": "request-success-rate"}, "thresholdRange: required unless compare is set"),
        ({"name": "request-success-rate", "compare": {"alpha": 0}}, "compare.alpha"),
        ({"name": "request-success-rate", "compare": {"alpha": 0.3}}, "compare.alpha"),
        ({"name": "request-success-rate", "compare": {"alpha": "nan"}}, "compare.alpha"),
        ({"name": "request-success-rate", "compare": {"minEffect": 1}}, "compare.minEffect"),
        ({"name": "request-success-rate", "compare": {"minEffect": 0.5}}, "compare.minEffect"),
        ({"name": "request-success-rate", "compare": {"against": "baseline"}}, "compare.against"),
        ({"name": "request-duration", "compare": {}}, "compare.slowerThan: request-duration"),
        (
            {"name": "request-success-rate", "compare": {"slowerThan": "1s"}},
            "compare.slowerThan: only request-duration and trace-duration",
        ),
        (
            {"name": "request-duration", "compare": {"slowerThan": "2h"}},
            "compare.slowerThan",
        ),
    ],
)
def test_bad_comparisons_are_refused_with_their_field_path(
    metric: dict[str, Any], words: str
) -> None:
    line = _refusal(metric)
    assert "spec.analysis.metrics[0]" in line or "analysis.metrics[0]" in line, line
    assert words in line, line


def _template(query: str, requests: str | None) -> MetricTemplateSpec:
    spec: dict[str, Any] = {
        "provider": {"prometheus": {"address": "http://p:9090"}},
        "query": query,
    }
    if requests is not None:
        spec["requestsQuery"] = requests
    return MetricTemplateSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("query", "requests", "words"),
    [
        (
            'sum(increase(errors{v="{{ version }}"}[{{ interval }}]))',
            None,
            "requestsQuery: a comparison",
        ),
        (
            "sum(increase(errors[{{ interval }}]))",
            'sum(x{s="{{ subset }}"})',
            "query: uses neither",
        ),
        ('sum(e{s="{{ subset }}"})', "sum(requests)", "requestsQuery: uses neither"),
        ('sum(e{s="{{ subset }}"})', 'sum(r{v="{{ version }}"})', ""),
        # Counted over the comparison's own exact window: a windowed rate means nothing there.
        (
            'sum(increase(e{s="{{ subset }}"}[{{ interval }}]))',
            'sum(r{v="{{ version }}"})',
            "query: a comparison counts over its own exact window",
        ),
        (
            'sum(e{s="{{ subset }}"})',
            'sum(rate (r{v="{{ version }}"}[1m]))',
            "requestsQuery: a comparison counts over its own exact window",
        ),
        ('sum(e{s="{{ subset }}"}) * {{ interval }}', 'sum(r{v="{{ version }}"})', "cumulative"),
        # A metric merely named like a function is no rate.
        ('sum(error_rate_total{s="{{ subset }}"})', 'sum(r{v="{{ version }}"})', ""),
    ],
)
def test_a_template_compares_only_when_both_queries_name_the_side(
    query: str, requests: str | None, words: str
) -> None:
    problem = _template(query, requests).comparison_problem()
    assert (words in problem) if words else problem == ""


def test_the_status_carries_each_test_and_refuses_an_unbounded_list() -> None:
    state = sequential.start("errors", revision="r1", comparison=Comparison())
    status = CanaryStatus.model_validate({"sequential": [state.to_wire()]})
    assert status.sequential == (state,)
    with pytest.raises(ValidationError, match="sequential"):
        CanaryStatus.model_validate({"sequential": [state.to_wire()] * (MAX_COMPARISONS + 1)})
