"""`canary.api.problems`: a pydantic error as `field.path: message` lines, in the file's words."""

from __future__ import annotations

from typing import Any, Self

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from canary.api import problems, resources
from canary.api.metrics import TemplateRef, ThresholdRange
from tests.unit.validation.documents import analysis, canary, metric_template


def _lines(document: dict[str, Any]) -> list[str]:
    kind = resources.KINDS[document["kind"]]
    with pytest.raises(ValidationError) as caught:
        resources.parse(document)
    return problems.lines(caught.value, kind)


def _metric(**fields: Any) -> dict[str, Any]:
    return {"name": "request-success-rate", "thresholdRange": {"min": 99}, **fields}


@pytest.mark.parametrize(
    ("document", "path", "words"),
    [
        pytest.param(
            canary(analysis={"stepWeights": [10, 50, 25]}),
            "spec.analysis.stepWeights[2]",
            ["25 does not increase on 50", "strictly increasing"],
            id="weights-not-increasing",
        ),
        pytest.param(
            canary(analysis={"stepWeights": [10, 120]}),
            "spec.analysis.stepWeights[1]",
            ["120 is outside 1..100"],
            id="step-weights-120",
        ),
        pytest.param(
            canary(analysis={"stepWeight": 120, "maxWeight": 100}),
            "spec.analysis.stepWeight",
            ["less than or equal to 100", "(got 120)"],
            id="step-weight-120",
        ),
        pytest.param(
            canary(analysis={"stepWeight": 10, "maxWeight": 150}),
            "spec.analysis.maxWeight",
            ["less than or equal to 100", "(got 150)"],
            id="max-weight-150",
        ),
        pytest.param(
            canary(canary={"subset": "v1"}),
            "spec.canary.subset",
            ["'v1' is also the stable subset"],
            id="stable-is-canary",
        ),
        pytest.param(
            canary(analysis=analysis(interval="30 seconds")),
            "spec.analysis.interval",
            ["'30 seconds' is not a duration", "30s, 1m"],
            id="bad-duration",
        ),
        pytest.param(
            canary(analysis=analysis(metrics=[_metric(interval="5 minutes")])),
            "spec.analysis.metrics[0].interval",
            ["'5 minutes' is not a duration"],
            id="bad-metric-duration",
        ),
        pytest.param(
            canary(analysis=analysis(metrics=[_metric(thresholdRange={})])),
            "spec.analysis.metrics[0].thresholdRange",
            ["set at least one of min and max"],
            id="empty-threshold-range",
        ),
        pytest.param(
            canary(analysis=analysis(stepWieghts=[1])),
            "spec.analysis.stepWieghts",
            ["unknown field", "did you mean stepWeights?", "known: interval, checkInterval,"],
            id="unknown-field",
        ),
        pytest.param(
            canary(analysis=analysis(metrics=[_metric(thresholdRange={"min": 1, "mx": 2})])),
            "spec.analysis.metrics[0].thresholdRange.mx",
            ["unknown field", "did you mean max?", "known: min, max"],
            id="unknown-field-in-a-list-item",
        ),
        pytest.param(
            canary(analysis=analysis(metrics=[_metric(name="request-sucess-rate")])),
            "spec.analysis.metrics[0].name",
            [
                "'request-sucess-rate' is not a built-in",
                "did you mean request-success-rate?",
                "templateRef",
            ],
            id="misspelt-built-in",
        ),
        pytest.param(
            canary(analysis=analysis(interval="30s", checkInterval="1m")),
            "spec.analysis.checkInterval",
            ["checkInterval (1m) is longer than interval (30s)"],
            id="check-interval-longer-than-interval",
        ),
        pytest.param(
            canary(analysis=analysis(threshold=0)),
            "spec.analysis.threshold",
            ["greater than or equal to 1", "(got 0)"],
            id="threshold-0",
        ),
        pytest.param(
            canary(analysis=analysis(stepWeights=None, stepWeight=10)),
            "spec.analysis.maxWeight",
            ["required with stepWeight"],
            id="step-weight-without-max-weight",
        ),
        pytest.param(
            canary(service={"route": "primary"}),
            "spec.service.host",
            ["required"],
            id="missing-host",
        ),
        pytest.param(
            canary(analysis=analysis(metrics=[_metric(onNoData="never")])),
            "spec.analysis.metrics[0].onNoData",
            ["'fail' or 'wait'", "(got 'never')"],
            id="enum",
        ),
        pytest.param(
            canary(stable=None),
            "spec.stable",
            ["expected a mapping", "(got null)"],
            id="null-section",
        ),
        pytest.param(
            canary(stable={"subset": "v1", "labels": {"app.kubernetes.io/version": 2}}),
            "spec.stable.labels['app.kubernetes.io/version']",
            ["valid string", "(got 2)"],
            id="label-key-with-dots",
        ),
        pytest.param(
            {**canary(), "apiVersion": "canary.dev/v1"},
            "apiVersion",
            ["'canary.dev/v1alpha1'", "(got 'canary.dev/v1')"],
            id="api-version",
        ),
        pytest.param(
            metric_template(query="rate(x{a='{{ service }'}[1m])"),
            "spec",
            ["unbalanced {{ }}"],
            id="template-unbalanced-braces",
        ),
    ],
)
def test_each_problem_names_the_field_as_written_in_yaml(
    document: dict[str, Any], path: str, words: list[str]
) -> None:
    """One line for the problem: the wire path of the field, then a message with the key words."""
    lines = _lines(document)
    assert len(lines) == 1, lines
    found_path, _, message = lines[0].partition(": ")
    assert found_path == path
    for word in words:
        assert word in message
    assert "Value error" not in message
    assert "\n" not in lines[0]


def test_several_problems_give_a_line_each_in_pydantic_order() -> None:
    """Independent fields fail together; each gets its own line."""
    lines = _lines(canary(analysis=analysis(threshold=0, interval="soon")))
    assert [line.partition(":")[0] for line in lines] == [
        "spec.analysis.interval",
        "spec.analysis.threshold",
    ]


def test_unknown_field_without_the_model_still_says_unknown_field() -> None:
    """Given no model to walk, the line cannot list the known fields but stays precise."""
    with pytest.raises(ValidationError) as caught:
        resources.parse(canary(analysis=analysis(extra=1)))
    assert problems.lines(caught.value) == ["spec.analysis.extra: unknown field"]


class _Inner(BaseModel):
    items: list[int]

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.items == [1]:
            raise ValueError("items[0]: one is not allowed")
        if self.items == [2]:
            raise ValueError("note: two is not allowed")
        return self


class _Outer(BaseModel):
    inner: _Inner


def test_a_validators_relative_path_is_joined_only_when_it_names_a_field() -> None:
    """`items[0]: ...` on `inner` becomes `inner.items[0]`; `note: ...` is not a field."""
    for items, expected in (
        ([1], "inner.items[0]: one is not allowed"),
        ([2], "inner: note: two is not allowed"),
    ):
        with pytest.raises(ValidationError) as caught:
            _Outer.model_validate({"inner": {"items": items}})
        assert problems.lines(caught.value, _Outer) == [expected]


def test_model_at_walks_lists_optionals_and_aliases() -> None:
    """The class behind a location, through list items, `X | None` and camelCase aliases."""
    loc = ("spec", "analysis", "metrics", 0, "thresholdRange")
    assert problems.model_at(resources.Canary, loc) is ThresholdRange
    loc = ("spec", "analysis", "metrics", 3, "templateRef")
    assert problems.model_at(resources.Canary, loc) is TemplateRef
    assert problems.model_at(resources.Canary, ("spec", "nope")) is None


def test_format_path_brackets_indexes_and_odd_keys() -> None:
    assert problems.format_path(("spec", "analysis", "stepWeights", 1)) == (
        "spec.analysis.stepWeights[1]"
    )
    assert problems.format_path(("labels", "a/b")) == "labels['a/b']"
