"""The slow-traces scenario's objects, and how the demo shows a trace check: each version's spans
of the judged operation, asked of Jaeger through the port, in the live view and the report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from rich.console import Console

from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.api.status import CanaryStatus
from canary.api.traces import JaegerProvider, SpanCompute
from canary.cli import main
from canary.demo import report, scenario, timeline, trace_summary, traces, view
from canary.engine.spans import Span
from canary.errors import Unavailable
from canary.ports import SpanQuery, SpanSample

ADDRESS = "http://127.0.0.1:16686"


def _objects() -> list[dict[str, object]]:
    return scenario.complete(scenario.objects(scenario.Scenario.SLOW_TRACES, jaeger=ADDRESS))


def test_the_scenario_judges_checkout_spans_beside_the_overall_checks() -> None:
    bodies = _objects()
    canary = next(Canary.model_validate(b) for b in bodies if b.get("kind") == "Canary")
    metrics = {metric.name: metric for metric in canary.spec.analysis.metrics}
    assert set(metrics) == {"request-success-rate", "request-duration", scenario.TRACE_CHECK}
    trace = metrics[scenario.TRACE_CHECK]
    assert trace.template_ref is not None
    assert trace.template_ref.name == scenario.TRACE_TEMPLATE
    assert trace.threshold_range.max == scenario.CHECKOUT_P99_MS
    # The slow checkouts stay within the whole service's p99 budget: only the trace SLO sees
    # them, and for the right reason.
    assert metrics["request-duration"].threshold_range.max is not None
    assert metrics["request-duration"].threshold_range.max > scenario.SLOW_MS
    assert scenario.SLOW_MS > scenario.CHECKOUT_P99_MS
    template = next(
        MetricTemplate.model_validate(b) for b in bodies if b["kind"] == "MetricTemplate"
    )
    backend = template.spec.provider.jaeger
    assert backend is not None
    assert (backend.address, backend.operation, backend.version_tag, backend.version_value) == (
        ADDRESS,
        "POST /checkout",
        "subset",
        "{{ subset }}",
    )
    assert (backend.compute, backend.percentile) == (SpanCompute.LATENCY, 99)
    assert scenario.traced(bodies)
    assert scenario.expected(scenario.Scenario.SLOW_TRACES, CanaryStatus()).phase == "Failed"


@pytest.mark.parametrize("chosen", [s for s in scenario.Scenario if not s.traced])
def test_other_scenarios_need_no_jaeger(chosen: scenario.Scenario) -> None:
    assert not scenario.traced(scenario.complete(scenario.objects(chosen)))


def test_the_span_metrics_variant_runs_jaeger_but_judges_the_built_in() -> None:
    bodies = scenario.complete(scenario.objects(scenario.Scenario.SLOW_TRACES_METRICS))
    # Jaeger runs: its spanmetrics connector is where the built-in's series come from.
    assert scenario.traced(bodies)
    (canary,) = [body for body in bodies if body["kind"] == "Canary"]
    names = [metric["name"] for metric in canary["spec"]["analysis"]["metrics"]]
    assert scenario.SPAN_METRICS_CHECK in names
    assert scenario.TRACE_CHECK not in names


def test_the_plan_knows_each_version_s_subset() -> None:
    plan = scenario.plan(_objects())
    assert (plan.stable_version, plan.stable_subset) == ("v1", "v1")
    assert (plan.canary_version, plan.canary_subset) == ("v2", "v2")


def _watch() -> traces.SpanWatch:
    found = traces.watch(_objects(), namespace="default", versions={"v1": "v1", "v2": "v2"})
    assert found is not None
    return found


def test_the_watch_asks_the_check_s_question_for_each_version() -> None:
    watch = _watch()
    assert (watch.check, watch.service, watch.operation) == (
        scenario.TRACE_CHECK,
        scenario.SERVICE,
        "POST /checkout",
    )
    assert watch.tags == {"v1": {"subset": "v1"}, "v2": {"subset": "v2"}}
    assert watch.window_s == 20.0
    assert watch.threshold_max == scenario.CHECKOUT_P99_MS
    assert watch.label == "p99 ms"


def test_no_trace_check_no_watch() -> None:
    bodies = scenario.complete(scenario.objects(scenario.Scenario.GOOD))
    assert traces.watch(bodies, namespace="default", versions={"v1": "v1"}) is None


class _Jaeger:
    """A TraceSource answering by the version tag; `down` versions raise Unavailable."""

    def __init__(self, durations: Mapping[str, list[float]], down: frozenset[str] = frozenset()):
        self.durations = durations
        self.down = down
        self.asked: list[SpanQuery] = []

    def spans(self, query: SpanQuery) -> SpanSample:
        self.asked.append(query)
        version = query.tags["subset"]
        if version in self.down:
            raise Unavailable("jaeger down")
        found = tuple(
            Span(trace_id=f"{version}-{index}", duration_ms=ms, error=False)
            for index, ms in enumerate(self.durations.get(version, []))
        )
        return SpanSample(spans=found, traces=len(found), truncated=False)


def test_each_version_s_value_over_the_window() -> None:
    jaeger = _Jaeger({"v1": [10.0, 12.0, 11.0], "v2": [10.0, 412.0]})
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    seen = _watch().measure(jaeger, now)
    assert seen == {"v1": traces.SpanStat(3, 12.0), "v2": traces.SpanStat(2, 412.0)}
    assert {q.operation for q in jaeger.asked} == {"POST /checkout"}
    assert all((now - q.start).total_seconds() == 20.0 and q.end == now for q in jaeger.asked)


def test_a_version_jaeger_cannot_answer_for_is_left_out() -> None:
    jaeger = _Jaeger({"v1": [10.0]}, down=frozenset({"v2"}))
    assert _watch().measure(jaeger) == {"v1": traces.SpanStat(1, 10.0)}
    assert _watch().measure(_Jaeger({})) == {
        "v1": traces.SpanStat(0, None),
        "v2": traces.SpanStat(0, None),
    }


def _sample(t: float, v1: float | None, v2: float | None) -> timeline.Sample:
    return timeline.Sample(
        t=t,
        phase="Progressing",
        message="",
        canary_weight=10,
        step=0,
        failed_checks=1,
        checks=(
            timeline.CheckView(
                scenario.TRACE_CHECK,
                "fail",
                412.0,
                "412 is outside <= 250",
                operation="POST /checkout",
                spans=14,
                examples=("4bf92f3577b34da6a3ce929d0e0e4736",),
            ),
        ),
        span_operation="POST /checkout",
        span_label="p99 ms",
        span_value={"v1": v1, "v2": v2},
        span_count={"v1": 40, "v2": 14},
    )


def test_the_live_view_names_the_operation_and_its_spans_per_version() -> None:
    console = Console(record=True, width=160)
    console.print(view.render(_sample(3.0, 11.0, 412.0), scenario="slow-traces", elapsed_limit=60))
    text = console.export_text()
    assert "POST /checkout p99 ms" in text
    assert "412  (14 spans)" in text
    assert "11  (40 spans)" in text
    assert "worst: 4bf92f3577b34da6a3ce929d0e0e4736" in text


def test_the_report_draws_the_span_values_and_the_threshold() -> None:
    picture = report.svg(
        [_sample(1.0, 10.0, None), _sample(2.0, 11.0, 412.0)], title="t", span_threshold=250
    )
    assert 'height="580"' in picture
    assert "POST /checkout p99 ms per version" in picture
    assert "threshold 250" in picture
    # The canary weight, and each version's span values (no success rates in these samples).
    assert picture.count("<polyline") == 3
    plain = report.svg([_sample(1.0, None, None)], title="t")
    assert 'height="580"' in plain  # an operation named, even before any span


def test_the_cli_defaults_are_the_scenario_s() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert "slow-traces" in result.output
    command = main.commands["demo"]
    defaults = {param.name: param.default for param in command.params}
    assert (defaults["slow_ms"], defaults["slow_rate"]) == (scenario.SLOW_MS, scenario.SLOW_RATE)
    assert "slow-traces" in command.params[0].type.choices  # type: ignore[attr-defined]


def test_a_latency_watch_of_an_error_ratio_template_says_errors() -> None:
    backend = JaegerProvider.model_validate(
        {"address": ADDRESS, "operation": "x", "versionTag": "subset", "compute": "errorRatio"}
    )
    watch = traces.SpanWatch("c", "s", "x", backend, {}, 10.0)
    assert watch.label == "errors %"


def test_every_trace_template_is_answered_by_the_mesh_s_jaeger() -> None:
    local = traces.MeshJaeger("http://127.0.0.1:4444")
    elsewhere = JaegerProvider.model_validate(
        {
            "address": "http://jaeger-query.observability:16686",
            "operation": "x",
            "versionTag": "subset",
            "compute": "errorRatio",
        }
    )
    assert local(elsewhere, "default").address == "http://127.0.0.1:4444"


def test_the_closing_lines_name_the_operation_and_the_traces_found() -> None:
    watch = _watch()
    jaeger = _Jaeger({"v2": [9.0, 207.0]})
    found = trace_summary.confirm(
        watch, jaeger, ["v2-1", "gone"], version="v2", since=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert found == {"v2-1": 207.0, "gone": None}
    closing = trace_summary.summary(watch, [_sample(1.0, 11.0, 207.0)], CanaryStatus(), found)
    said = "\n".join(trace_summary.lines(closing))
    assert "trace check checkout-p99: demo 'POST /checkout'" in said
    assert "v2: p99 ms worst 207" in said
    assert "example trace v2-1: 207 ms in Jaeger" in said
    assert "example trace gone: not found in Jaeger" in said
