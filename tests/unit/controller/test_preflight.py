"""Gathering preflight's items through the ports' fakes: what each sees, and never a guess."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from canary.api import builtins
from canary.api.metric_template import MetricTemplate, PrometheusProvider
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Condition, Phase
from canary.controller import preflight
from canary.controller.observe import route_of
from canary.controller.sources import Sources, promql
from canary.engine.observation import Measurement, Traffic
from canary.engine.preflight import ItemState, PreflightItem
from canary.fakes import FakeMetrics, FakePods, FakeProxies, FakeSecrets, FakeStore, FakeWebhooks
from canary.ports import CanaryKey, PodView

KEY = CanaryKey("shop", "reviews")
FQDN = "reviews.shop.svc.cluster.local"
STABLE_SERIES = (
    'count(istio_requests_total{reporter="destination",destination_workload_namespace="shop",'
    'destination_service_name="reviews",destination_version="v1"})'
)
SELECTOR = STABLE_SERIES.split("{", 1)[1][: -len("})")]


def spec_of(**extra: Any) -> CanarySpec:
    raw: dict[str, Any] = {
        "service": {"host": "reviews"},
        "stable": {"subset": "v1", "labels": {"version": "v1"}},
        "canary": {"subset": "v2", "labels": {"version": "v2"}},
        "analysis": {
            "stepWeights": [10, 50],
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
        },
        **extra,
    }
    return CanarySpec.model_validate(raw)


def gather(
    spec: CanarySpec,
    *,
    pods: FakePods | None = None,
    proxies: FakeProxies | None = None,
    metrics: FakeMetrics | None = None,
    weights: dict[str, int] | None = None,
) -> dict[str, PreflightItem]:
    context = preflight.Context(
        KEY,
        spec,
        route_of(KEY, spec),
        None if weights is None else Traffic(weights, applied=True),
        preflight.Preflight(pods=pods, proxies=proxies),
        FakeStore(),
        Sources(builtin=metrics or FakeMetrics(), webhooks=FakeWebhooks(), secrets=FakeSecrets()),
        builtins.QuerySet.ISTIO,
    )
    return {item.name: item for item in preflight.gather(context)}


def pod(name: str, *, ready: bool = True, sidecar: bool = True) -> PodView:
    return PodView(name, ready, sidecar)


@pytest.mark.parametrize(
    ("pods", "state", "seen"),
    [
        (
            FakePods({"v1": (pod("a"), pod("b")), "v2": (pod("c"),)}),
            ItemState.OK,
            "ready pods with the sidecar: v1 2/2, v2 1/1",
        ),
        (
            FakePods({"v1": (pod("a"),), "v2": (pod("c", sidecar=False), pod("d"))}),
            ItemState.FAILED,
            "subset v2: c without istio-proxy",
        ),
        (
            # A pod that is not ready serves nothing: its sidecar is not asked about.
            FakePods({"v1": (pod("a"),), "v2": (pod("c", ready=False, sidecar=False),)}),
            ItemState.OK,
            "ready pods with the sidecar: v1 1/1, v2: no ready pod to check",
        ),
        (
            FakePods(unlistable="403 Forbidden: pods is forbidden"),
            ItemState.UNKNOWN,
            "cannot list the pods of subset v1: 403 Forbidden: pods is forbidden",
        ),
        (None, ItemState.SKIPPED, "not checked: no pod source here"),
    ],
)
def test_sidecars(pods: FakePods | None, state: ItemState, seen: str) -> None:
    item = gather(spec_of(), pods=pods, weights={"v1": 100})["sidecars"]
    assert (item.state, item.seen) == (state, seen)
    if state in (ItemState.FAILED, ItemState.UNKNOWN):
        assert item.fix


def test_the_pods_are_asked_for_both_subsets_stable_first() -> None:
    pods = FakePods()
    gather(spec_of(), pods=pods)
    assert pods.asked == ["v1", "v2"]


@pytest.mark.parametrize(
    ("proxies", "weights", "state", "seen"),
    [
        (None, {"v1": 100}, ItemState.SKIPPED, "not checked: no proxy visible"),
        (FakeProxies(), {"v1": 100}, ItemState.SKIPPED, "not checked: no proxy visible"),
        (
            FakeProxies(served={"http://gw:15000": ({"v1": 100},)}),
            {"v1": 100, "v2": 0},
            ItemState.OK,
            "1 proxy(ies) serve {v1: 100}",
        ),
        (
            FakeProxies(served={"http://a": ({"v1": 100},), "http://b": ({"v1": 90, "v2": 10},)}),
            {"v1": 100, "v2": 0},
            ItemState.FAILED,
            "the route says {v1: 100}, but http://b serves {v1: 90, v2: 10}",
        ),
        (
            FakeProxies(served={"http://a": ()}),
            {"v1": 100},
            ItemState.FAILED,
            "the route says {v1: 100}, but http://a serves no route to reviews",
        ),
        (
            FakeProxies(stats={"http://down": frozenset()}),
            {"v1": 100},
            ItemState.UNKNOWN,
            "cannot read proxy http://down: http://down: connection refused",
        ),
        (
            FakeProxies(served={"http://a": ({"v1": 100},)}),
            None,
            ItemState.UNKNOWN,
            "the managed route could not be read",
        ),
    ],
)
def test_callers_proxies(
    proxies: FakeProxies | None, weights: dict[str, int] | None, state: ItemState, seen: str
) -> None:
    item = gather(spec_of(), proxies=proxies, weights=weights)["callers' proxies"]
    assert (item.state, item.seen) == (state, seen)


def test_metric_series_are_asked_for_the_stable_without_outcome_matchers() -> None:
    metrics = FakeMetrics(answers={STABLE_SERIES: Measurement.of(4)})
    item = gather(spec_of(), metrics=metrics)["metric series"]
    # The success rate's query names istio_requests_total twice (all and not-5xx): one question.
    assert metrics.asked == [STABLE_SERIES]
    assert (item.state, item.seen) == (ItemState.OK, "1 series found for subset v1")


def test_missing_series_fail_and_a_prometheus_error_is_unknown() -> None:
    missing = gather(spec_of(), metrics=FakeMetrics())["metric series"]
    assert missing.state is ItemState.FAILED
    assert missing.seen == f"request-success-rate: no series {STABLE_SERIES[6:-1]}"
    down = FakeMetrics(answers={STABLE_SERIES: Measurement.error("Prometheus unreachable")})
    unknown = gather(spec_of(), metrics=down)["metric series"]
    assert unknown.state is ItemState.UNKNOWN
    assert "Prometheus unreachable" in unknown.seen


def test_a_compare_only_check_is_asked_for_its_requests_series() -> None:
    """Its query counts bad events, whose series a healthy stable may never have made."""
    errors = MetricTemplate.model_validate(
        {
            "metadata": {"name": "errors", "namespace": "shop"},
            "spec": {
                "provider": {"prometheus": {"address": "http://127.0.0.1:9"}},
                "query": 'sum(app_errors_total{version="{{ version }}"})',
                "requestsQuery": 'sum(app_requests_total{version="{{ version }}"})',
            },
        }
    )
    metrics = FakeMetrics()
    compared = {"name": "errors", "templateRef": {"name": "errors"}, "compare": {}}
    spec = spec_of(analysis={"stepWeights": [10], "metrics": [compared]})
    context = preflight.Context(
        KEY,
        spec,
        route_of(KEY, spec),
        None,
        preflight.Preflight(),
        FakeStore(templates={("shop", "errors"): errors}),
        Sources(
            builtin=FakeMetrics(),
            webhooks=FakeWebhooks(),
            secrets=FakeSecrets(),
            metrics={PrometheusProvider: promql(lambda backend, namespace: metrics)},
        ),
        builtins.QuerySet.ISTIO,
    )
    preflight.metric_series(context)
    assert metrics.asked == ['count(app_requests_total{version="v1"})']
    latency = {"name": "request-duration", "compare": {"slowerThan": "250ms"}}
    builtin = FakeMetrics()
    gather(spec_of(analysis={"stepWeights": [10], "metrics": [latency]}), metrics=builtin)
    assert builtin.asked == [
        f'count(istio_request_duration_milliseconds_bucket{{{SELECTOR},le="+Inf"}})'
    ]


def test_no_metric_check_or_skipped_analysis_asks_nothing() -> None:
    metrics = FakeMetrics()
    bare = spec_of(analysis={"stepWeights": [10]})
    assert gather(bare, metrics=metrics)["metric series"].state is ItemState.SKIPPED
    skipping = spec_of(skipAnalysis=True)
    assert gather(skipping, metrics=metrics)["metric series"].state is ItemState.SKIPPED
    assert metrics.asked == []


CHAOS = [
    {
        "name": "eject",
        "atWeight": 10,
        "duration": "30s",
        "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
        "expect": {"ejection": True},
    }
]
EJECTIONS = f"cluster.outbound|9080|v2|{FQDN}.outlier_detection.ejections_enforced_total"


TOTAL = f"cluster.outbound|9080|v2|{FQDN}.upstream_rq_total"


@pytest.mark.parametrize(
    ("stats", "state", "seen"),
    [
        (frozenset({EJECTIONS, TOTAL}), "ok", "exported by 1 proxy(ies)"),
        # Exported, but no outlier detection on the cluster: what the experiment is there to
        # find out (its verdict fails on no ejection), so not pre-empted here.
        (
            frozenset({TOTAL}),
            "ok",
            "exported by 1 proxy(ies) (http://a: no outlier detection on subset v2's cluster: "
            "the experiment will find no ejection)",
        ),
        # Nothing of the subset's cluster: trimmed by proxyStatsMatcher, the verdict would
        # have nothing to read. Another subset's or service's stats are not this one's.
        (frozenset(), "failed", "http://a: no stats of subset v2's cluster"),
        (
            frozenset({EJECTIONS.replace("|v2|", "|v1|"), TOTAL.replace(FQDN, "x.shop.svc")}),
            "failed",
            "http://a: no stats of subset v2's cluster",
        ),
    ],
)
def test_chaos_stats(stats: frozenset[str], state: str, seen: str) -> None:
    proxies = FakeProxies(served={"http://a": ({"v1": 100},)}, stats={"http://a": stats})
    item = gather(spec_of(chaos=CHAOS), proxies=proxies, weights={"v1": 100})["chaos stats"]
    assert (item.state, item.seen) == (state, seen)
    if state == "failed":
        assert "proxyStatsMatcher" in item.fix


def test_overflow_needs_its_counter_whatever_else_is_exported() -> None:
    overflow = [{**CHAOS[0], "expect": {"overflow": True}}]
    proxies = FakeProxies(served={"http://a": ({"v1": 100},)}, stats={"http://a": {TOTAL}})
    item = gather(spec_of(chaos=overflow), proxies=proxies, weights={"v1": 100})["chaos stats"]
    assert (item.state, item.seen) == (
        ItemState.FAILED,
        "http://a: no upstream_rq_pending_overflow for subset v2",
    )


def test_chaos_stats_without_experiments_or_proxies_are_skipped() -> None:
    assert gather(spec_of())["chaos stats"].state is ItemState.SKIPPED
    assert gather(spec_of(chaos=CHAOS))["chaos stats"].seen == "not checked: no proxy visible"


def test_adding_an_item_is_one_function_in_the_list() -> None:
    assert [item.__name__ for item in preflight.ITEMS] == [
        "sidecars",
        "callers",
        "metric_series",
        "chaos_stats",
        "mtls_pairings",
    ]


@pytest.mark.parametrize(
    ("status", "revision", "command", "wanted"),
    [
        (CanaryStatus(), "r1", False, True),
        (CanaryStatus(phase=Phase.INITIALIZING, revision="r1"), "r1", False, True),
        (CanaryStatus(phase=Phase.PROGRESSING, revision="r1"), "r1", False, False),
        (CanaryStatus(phase=Phase.SUCCEEDED, revision="r1"), "r1", False, False),
        # A new revision starts over, so it is checked even past Initializing.
        (CanaryStatus(phase=Phase.PROGRESSING, revision="r1"), "r2", False, True),
        (CanaryStatus(phase=Phase.FAILED, revision="r1"), "r1", True, True),
    ],
)
def test_gathered_only_when_a_rollout_may_start(
    status: CanaryStatus, revision: str, command: bool, wanted: bool
) -> None:
    assert preflight.wanted(status, revision, command_pending=command) is wanted


def test_not_gathered_again_once_passed_for_this_revision() -> None:
    passed = Condition(
        type="Preflight", status="True", reason="PreflightPassed", message="",
        last_transition_time=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    waiting = CanaryStatus(phase=Phase.INITIALIZING, revision="r1", conditions=[passed])
    assert not preflight.wanted(waiting, "r1", command_pending=False)
    assert preflight.wanted(waiting, "r2", command_pending=False)
    # canary retry starts a new rollout over a passed condition: it is checked again.
    failed = CanaryStatus(phase=Phase.FAILED, revision="r1", conditions=[passed])
    assert preflight.wanted(failed, "r1", command_pending=True)
