"""The models' own rules: durations, the step plan, templates and built-in queries."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from canary.api import builtins, durations, templating
from canary.api.metric_template import STANDARD_VARIABLES
from canary.api.spec import Analysis, CanarySpec
from canary.engine import revision


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m", 60), ("1h30m", 5400), ("250ms", 0.25), ("1.5m", 90), ("2h", 7200)],
)
def test_durations_parse(text: str, seconds: float) -> None:
    """Go-style durations, as Flagger and Argo users write them."""
    assert durations.seconds(text) == seconds


@pytest.mark.parametrize("text", ["30", "30 seconds", "-1s", "0s", "1d", "", "m"])
def test_bad_durations_are_refused_with_the_allowed_form(text: str) -> None:
    """A duration that does not parse is an error, never a silent default."""
    with pytest.raises(ValueError, match="duration"):
        durations.seconds(text)


def test_step_plan_from_step_weight_stops_at_max_weight() -> None:
    """stepWeight 10 up to maxWeight 50 gives five steps; promotion to 100 follows."""
    analysis = Analysis.model_validate({"stepWeight": 10, "maxWeight": 50})
    assert analysis.weights == (10, 20, 30, 40, 50)
    uneven = Analysis.model_validate({"stepWeight": 20, "maxWeight": 50})
    assert uneven.weights == (20, 40)


def test_check_interval_defaults_to_interval() -> None:
    analysis = Analysis.model_validate({"interval": "45s", "stepWeights": [50]})
    assert analysis.check_interval_seconds == 45


@pytest.mark.parametrize(
    ("analysis", "words"),
    [
        ({"stepWeights": [10, 10]}, "strictly increasing"),
        ({"stepWeights": [10, 120]}, "outside 1..100"),
        ({"stepWeights": [0, 100]}, "weight 0 gives the canary no traffic"),
        ({"stepWeight": 10}, "maxWeight"),
        ({"stepWeight": 10, "maxWeight": 150}, "less than or equal to 100"),
        ({"stepWeight": 30, "maxWeight": 20}, "below stepWeight"),
        ({}, "set stepWeights"),
        ({"stepWeights": [10], "stepWeight": 10, "maxWeight": 20}, "not both"),
        ({"stepWeights": [10], "interval": "10s", "checkInterval": "1m"}, "longer than"),
        ({"stepWeights": [10], "threshold": 0}, "greater than or equal to 1"),
        ({"stepWeights": [10], "stepWieghts": [1]}, "Extra inputs"),
    ],
)
def test_bad_analysis_is_refused(analysis: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Analysis.model_validate(analysis)


def test_stable_and_canary_must_differ() -> None:
    with pytest.raises(ValidationError, match="also the stable subset"):
        CanarySpec.model_validate(
            {
                "service": {"host": "a"},
                "stable": {"subset": "v1"},
                "canary": {"subset": "v1"},
                "analysis": {"stepWeights": [10]},
            }
        )


def test_a_misspelt_builtin_lists_the_builtins() -> None:
    with pytest.raises(ValidationError, match="request-duration, request-success-rate"):
        Analysis.model_validate(
            {
                "stepWeights": [10],
                "metrics": [{"name": "request-sucess-rate", "thresholdRange": {"min": 99}}],
            }
        )


def test_templates_refuse_unknown_variables() -> None:
    """A variable nobody set would make a selector that matches nothing; it is an error."""
    with pytest.raises(templating.TemplateError, match="cluster"):
        templating.render("up{c='{{ cluster }}'}", {"namespace": "shop"})
    assert templating.render("{{namespace}}/{{ subset }}", {"namespace": "a", "subset": "b"}) == (
        "a/b"
    )


@pytest.mark.parametrize("query_set", list(builtins.QuerySet))
@pytest.mark.parametrize("name", sorted(builtins.NAMES))
def test_builtin_queries_render_with_the_standard_variables(
    query_set: builtins.QuerySet, name: str
) -> None:
    """Every built-in query uses only the standard variables (and the operation, for the
    per-operation ones) and renders to balanced PromQL."""
    query = builtins.QUERIES[query_set][name]
    known = STANDARD_VARIABLES | ({builtins.OPERATION} if name in builtins.PER_OPERATION else set())
    values = {variable: f"<{variable}>" for variable in known}
    for text in (query.query, query.requests):
        rendered = templating.render(text, values)
        assert "{{" not in rendered
        assert rendered.count("(") == rendered.count(")")
        assert rendered.count("{") == rendered.count("}")
        assert "<interval>" in rendered
    assert re.search(r"<subset>|<version>", templating.render(query.query, values))


def test_revision_ignores_suspend_and_follows_the_target() -> None:
    """Pausing is not a new revision; a new pod template is."""
    base = {
        "service": {"host": "a"},
        "stable": {"subset": "v1"},
        "canary": {"subset": "v2"},
        "analysis": {"stepWeights": [10]},
    }
    spec = CanarySpec.model_validate(base)
    suspended = CanarySpec.model_validate({**base, "suspend": True})
    assert revision.of(spec) == revision.of(suspended)
    assert revision.of(spec, target_revision="abc") != revision.of(spec)
    changed = CanarySpec.model_validate({**base, "analysis": {"stepWeights": [20]}})
    assert revision.of(changed) != revision.of(spec)
