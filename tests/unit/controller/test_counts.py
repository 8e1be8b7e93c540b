"""A comparing check's counts through a fake provider: which texts are asked for which side,
over which window, and that every answer keeps its kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from canary.api import builtins
from canary.api.metric_template import MetricTemplate
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, MeasurementKind, Phase
from canary.controller import counts, queries
from canary.controller.observe import observe, route_of
from canary.controller.sources import PromQL, Sources
from canary.engine.observation import CountsReading, Measurement
from canary.fakes import FakeRouter, FakeSecrets, FakeStore, FakeWebhooks, FakeWorkloads
from canary.ports import CanaryKey, StoredCanary

KEY = CanaryKey("shop", "reviews")
SINCE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = SINCE + timedelta(seconds=40)
AT_NOW = f"@ {NOW.timestamp():.3f}"
AT_SINCE = f"@ {SINCE.timestamp():.3f}"


@dataclass
class Provider:
    """Answers each query by the first rule whose text it contains; no rule: no data."""

    rules: list[tuple[str, Callable[[str], Measurement]]] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        self.asked.append(query)
        for needle, answer in self.rules:
            if needle in query:
                return answer(query)
        return Measurement.no_data(query=query, message="the query matched no series")

    def answering(self, needle: str, value: float) -> Provider:
        self.rules.append((needle, lambda query: Measurement.of(value, query=query)))
        return self


def spec_of(*metrics: dict[str, Any]) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "reviews"},
            "stable": {"subset": "v1", "labels": {"version": "v1"}},
            "canary": {"subset": "v2", "labels": {"version": "v2"}},
            "analysis": {"interval": "10s", "stepWeights": [10, 50], "metrics": list(metrics)},
        }
    )


SUCCESS = {"name": "request-success-rate", "compare": {}}
DURATION = {"name": "request-duration", "compare": {"slowerThan": "250ms"}}


def read(
    metric: dict[str, Any],
    provider: Provider,
    *,
    query_set: builtins.QuerySet = builtins.QuerySet.ISTIO,
    stable_subset: str = "",
) -> CountsReading:
    spec = spec_of(metric)
    check = spec.analysis.metrics[0]
    canary, stable = queries.variables(KEY, spec, check, stable_subset=stable_subset)
    return counts.read(
        check,
        None,
        canary=canary,
        stable=stable,
        since=SINCE,
        now=NOW,
        query_set=query_set,
        evidence=PromQL(provider),
    )


def test_each_side_is_asked_its_requests_and_its_5xx_over_the_window() -> None:
    provider = (
        Provider()
        .answering('version="v2",response_code', 3)
        .answering('version="v2"', 100)
        .answering('version="v1",response_code', 1)
        .answering('version="v1"', 900)
    )
    reading = read(SUCCESS, provider)
    assert reading.since == SINCE
    values = [
        reading.canary_requests.value,
        reading.canary_bad.value,
        reading.stable_requests.value,
        reading.stable_bad.value,
    ]
    assert values == [100, 3, 900, 1]
    assert len(provider.asked) == 4
    for asked in provider.asked:
        assert AT_NOW in asked
        assert AT_SINCE in asked
    requests, bad = provider.asked[0], provider.asked[1]
    assert requests.startswith("clamp_min(")
    assert not requests.endswith("or vector(0)")
    # A 5xx counter that does not exist yet is none; requests that do not are no data.
    assert bad.endswith("or vector(0)")


def test_an_unknown_count_is_never_zero() -> None:
    provider = Provider().answering('version="v2"', 100)
    provider.rules.insert(
        0, ('version="v1"', lambda query: Measurement.error("Prometheus down", query=query))
    )
    reading = read(SUCCESS, provider)
    assert reading.stable_requests.kind is MeasurementKind.ERROR
    assert reading.stable_bad.kind is MeasurementKind.ERROR
    assert reading.stable_requests.value is None
    assert reading.canary_requests.kind is MeasurementKind.VALUE


def test_a_latency_bound_that_is_no_bucket_is_no_data_saying_so() -> None:
    # The +Inf bucket answers; the bound's does not exist, so the difference has no series.
    provider = Provider()
    provider.rules.append(
        (
            "le=~",
            lambda query: Measurement.no_data(query=query, message="the query matched no series"),
        )
    )
    provider.answering('le="+Inf"', 50)
    reading = read(DURATION, provider, query_set=builtins.QuerySet.ENVOY)
    assert reading.canary_requests.value == 50
    assert reading.canary_bad.kind is MeasurementKind.NO_DATA
    assert "slowerThan must be one of the histogram's bucket bounds" in reading.canary_bad.message
    assert "le=250" in reading.canary_bad.message
    assert 'le=~"250|250[.]0"' in reading.canary_bad.query


def test_a_latency_check_without_traffic_keeps_the_plain_no_data() -> None:
    reading = read(DURATION, Provider())
    assert reading.canary_requests.kind is MeasurementKind.NO_DATA
    assert reading.canary_bad.kind is MeasurementKind.NO_DATA
    assert "bucket bounds" not in reading.canary_bad.message


def test_the_stable_side_is_the_promoted_subset() -> None:
    """After a promotion, stable is the subset the route treats as stable, not spec.stable's."""
    provider = Provider()
    read(SUCCESS, provider, query_set=builtins.QuerySet.ENVOY, stable_subset="v0")
    assert "[|]v2[|]reviews" in provider.asked[0]
    assert "[|]v0[|]reviews" in provider.asked[2]


def template(**spec: Any) -> MetricTemplate:
    return MetricTemplate.model_validate(
        {
            "metadata": {"name": "errors", "namespace": "shop"},
            "spec": {"provider": {"prometheus": {"address": "http://127.0.0.1:9"}}, **spec},
        }
    )


ERRORS = template(
    query='sum(app_errors_total{version="{{ version }}",team="{{ team }}"})',
    requestsQuery='sum(app_requests_total{version="{{ version }}"})',
)
TEMPLATE_CHECK = {
    "name": "errors",
    "templateRef": {"name": "errors"},
    "templateVariables": {"team": "a"},
    "compare": {"alpha": 0.05},
}


def test_a_template_counts_bad_events_with_its_query_and_requests_with_requests_query() -> None:
    spec = spec_of(TEMPLATE_CHECK)
    check = spec.analysis.metrics[0]
    canary, stable = queries.variables(KEY, spec, check)
    provider = Provider()
    counts.read(
        check,
        ERRORS.spec,
        canary=canary,
        stable=stable,
        since=SINCE,
        now=NOW,
        query_set=builtins.QuerySet.ISTIO,
        evidence=PromQL(provider),
    )
    requests, bad, stable_requests, stable_bad = provider.asked
    assert '(sum(app_requests_total{version="v2"}))[1m:1s]' in requests
    assert '(sum(app_errors_total{version="v2",team="a"}))[1m:1s]' in bad
    assert 'app_requests_total{version="v1"}' in stable_requests
    assert 'app_errors_total{version="v1",team="a"}' in stable_bad
    assert bad.endswith("or vector(0)")
    assert not requests.endswith("or vector(0)")


class NotAQueryBackend:
    def measure(self, query: queries.ResolvedQuery, now: datetime) -> Measurement:
        raise AssertionError("a trace backend is never asked for counts")


def test_a_backend_without_queries_is_an_error_not_a_crash() -> None:
    spec = spec_of(TEMPLATE_CHECK)
    check = spec.analysis.metrics[0]
    reading = counts.read(
        check,
        ERRORS.spec,
        canary={},
        stable={},
        since=SINCE,
        now=NOW,
        query_set=builtins.QuerySet.ISTIO,
        evidence=NotAQueryBackend(),
    )
    for each in (reading.canary_requests, reading.stable_bad):
        assert each.kind is MeasurementKind.ERROR
        assert each.message.startswith("spec.analysis.metrics[errors].compare: ")


def test_a_template_without_requests_query_is_an_error_not_a_crash() -> None:
    spec = spec_of(TEMPLATE_CHECK)
    reading = counts.read(
        spec.analysis.metrics[0],
        template(query='sum(x{version="{{ version }}"})').spec,
        canary={"version": "v2"},
        stable={"version": "v1"},
        since=SINCE,
        now=NOW,
        query_set=builtins.QuerySet.ISTIO,
        evidence=PromQL(Provider()),
    )
    assert reading.canary_bad.kind is MeasurementKind.ERROR
    assert "requestsQuery" in reading.canary_bad.message


def status(**fields: Any) -> CanaryStatus:
    return CanaryStatus.model_validate(
        {"phase": Phase.PROGRESSING, "step": 0, "stepStartedAt": SINCE, **fields}
    )


def tick(spec: CanarySpec, state: CanaryStatus, provider: Provider) -> Any:
    route = route_of(KEY, spec)
    store = FakeStore(
        stored={KEY: StoredCanary(KEY, spec, state)}, templates={("shop", "errors"): ERRORS}
    )
    sources = Sources(builtin=provider, webhooks=FakeWebhooks(), secrets=FakeSecrets())
    return observe(
        store.stored[KEY],
        spec,
        NOW,
        route=route,
        store=store,
        workloads=FakeWorkloads(),
        router=FakeRouter(weights={route: {"v1": 90, "v2": 10}}),
        sources=sources,
        query_set=builtins.QuerySet.ISTIO,
    )


def test_observe_reads_a_due_comparison_and_measures_only_what_has_a_range() -> None:
    both = {**SUCCESS, "thresholdRange": {"min": 99}}
    spec = spec_of(both, DURATION)
    provider = Provider().answering("", 7)
    observed = tick(spec, status(), provider)
    assert set(observed.comparisons) == {"request-success-rate", "request-duration"}
    assert observed.comparisons["request-duration"].since == SINCE
    assert observed.comparisons["request-duration"].canary_bad.value == 7
    # The compare-only latency check's query is a count: no Measurement is made of it.
    assert set(observed.measurements) == {"request-success-rate"}
    assert len(provider.asked) == 1 + 2 * 4


def test_no_comparison_before_a_step_is_live() -> None:
    spec = spec_of(SUCCESS)
    provider = Provider().answering("", 7)
    observed = tick(spec, CanaryStatus(phase=Phase.INITIALIZING), provider)
    assert observed.comparisons == {}
    assert provider.asked == []


@pytest.mark.parametrize(
    ("last_check", "since"),
    [
        # The window of this step begins at its clock start...
        (None, SINCE),
        # ...and when resuming shifted that start past the last reading, at that reading.
        (SINCE + timedelta(seconds=5), SINCE + timedelta(seconds=5)),
    ],
)
def test_the_window_starts_where_comparing_says(
    last_check: datetime | None, since: datetime
) -> None:
    spec = spec_of(SUCCESS)
    state = status(
        stepStartedAt=SINCE - timedelta(seconds=30) if last_check else SINCE,
        lastCheckAt=last_check,
        sequential=[
            {
                "name": "request-success-rate",
                "revision": "",
                "alpha": 0.01,
                "minEffect": 1.5,
                "step": 0,
                "since": SINCE - timedelta(seconds=60),
                **dict.fromkeys(
                    [
                        "stepCanaryRequests",
                        "stepCanaryBad",
                        "stepStableRequests",
                        "stepStableBad",
                        "canaryRequests",
                        "canaryBad",
                        "stableRequests",
                        "stableBad",
                    ],
                    0,
                ),
                "logEvidence": [],
                "logEvidenceMinEffect": 0,
                "verdict": "undecided",
            }
        ]
        if last_check
        else [],
    )
    provider = Provider().answering("", 1)
    observed = tick(spec, state, provider)
    assert observed.comparisons["request-success-rate"].since == since
    assert f"@ {since.timestamp():.3f}" in provider.asked[0]
