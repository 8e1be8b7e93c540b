"""The tick with fake ports: what is read, what is written, and in which order."""

from __future__ import annotations

from typing import Any

import pytest

from canary.api import builtins
from canary.api.metric_template import MetricTemplate, PrometheusProvider
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, MeasurementKind, Phase
from canary.controller.reconcile import Reconciler
from canary.controller.sources import Sources, promql
from canary.engine.observation import Measurement
from canary.errors import Unavailable
from canary.fakes import (
    FakeClock,
    FakeMetrics,
    FakeNotifier,
    FakeRouter,
    FakeSecrets,
    FakeStore,
    FakeWebhooks,
    FakeWorkloads,
)
from canary.ports import CanaryKey, RouteRef, StoredCanary, SubsetRef

KEY = CanaryKey("shop", "accounts")
ROUTE = RouteRef(
    namespace="shop",
    virtual_service="accounts",
    host="accounts",
    route=None,
    destination_rule="accounts",
    subsets=(SubsetRef("v1"), SubsetRef("v2")),
)


def _spec(**analysis: Any) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "accounts"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {
                "interval": "10s",
                "threshold": 1,
                "stepWeights": [20, 60],
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
                **analysis,
            },
        }
    )


class Harness:
    def __init__(self, spec: CanarySpec | None, *, value: float = 99.9) -> None:
        self.store = FakeStore(
            stored={KEY: StoredCanary(KEY, spec, CanaryStatus(), problems=("bad field",))}
        )
        self.router = FakeRouter(weights={ROUTE: {"v1": 100, "v2": 0}})
        self.metrics = _AnyQuery(Measurement.of(value, samples=1000))
        self.notifier = FakeNotifier()
        self.clock = FakeClock()
        self.webhooks = FakeWebhooks()
        self.workloads = FakeWorkloads()
        self.template_metrics = _AnyQuery(Measurement.of(value, samples=1000))
        self.sources = Sources(
            builtin=self.metrics,
            webhooks=self.webhooks,
            secrets=FakeSecrets(),
            metrics={PrometheusProvider: promql(lambda backend, namespace: self.template_metrics)},
        )
        self.reconciler = Reconciler(
            store=self.store,
            workloads=self.workloads,
            router=self.router,
            notifier=self.notifier,
            clock=self.clock,
            sources=self.sources,
            query_set=builtins.QuerySet.ENVOY,
        )

    def run(self, ticks: int, every: float = 5) -> CanaryStatus:
        for _ in range(ticks):
            self.reconciler.tick(KEY)
            self.clock.advance(every)
        return self.store.stored[KEY].status


class _AnyQuery(FakeMetrics):
    def __init__(self, answer: Measurement) -> None:
        super().__init__()
        self.answer = answer

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        self.asked.append(query)
        return Measurement(
            self.answer.kind, self.answer.value, query=query, samples=self.answer.samples
        )


def test_a_healthy_rollout_is_promoted_through_the_ports() -> None:
    """Fake route, fake metrics: the loop walks 20, 60, 100 and ends Succeeded."""
    harness = Harness(_spec())
    status = harness.run(20)
    assert status.phase is Phase.SUCCEEDED
    assert [w.canary_weight for _, w in harness.router.writes] == [20, 60, 100]
    assert harness.router.weights[ROUTE] == {"v1": 0, "v2": 100}
    assert any(n.reason == "Promoted" for _, n in harness.notifier.sent)


def test_built_in_queries_are_rendered_for_the_canary_subset() -> None:
    """The Envoy query set asks for the canary subset's cluster over the metric's window."""
    harness = Harness(_spec())
    harness.run(4)
    assert harness.metrics.asked
    assert all("[|]v2[|]accounts" in q and "[1m]" in q for q in harness.metrics.asked)


def test_status_is_written_before_the_weights() -> None:
    """A crash between the two leaves a status that already names the target weight."""
    harness = Harness(_spec())
    order: list[str] = []
    write_status = harness.store.write_status
    set_weights = harness.router.set_weights
    harness.store.write_status = lambda k, s: (order.append("status"), write_status(k, s))[1]  # type: ignore[method-assign]
    harness.router.set_weights = lambda r, w: (order.append("weights"), set_weights(r, w))[1]  # type: ignore[method-assign]
    harness.run(1)
    assert order == ["status", "weights"]


def test_a_bad_canary_is_rolled_back() -> None:
    harness = Harness(_spec(), value=50.0)
    status = harness.run(10)
    assert status.phase is Phase.FAILED
    assert harness.router.weights[ROUTE] == {"v1": 100, "v2": 0}


def test_an_unparsable_canary_gets_invalid_and_no_write() -> None:
    """A spec that did not validate: InvalidSpec condition and Event, and the route untouched."""
    harness = Harness(None)
    status = harness.run(3)
    assert status.phase is Phase.INVALID
    assert status.message == "bad field"
    assert harness.router.writes == []
    assert [n.reason for _, n in harness.notifier.sent] == ["InvalidSpec"]
    assert len(harness.store.status_writes) == 1


def test_a_missing_template_is_invalid_and_nothing_is_patched() -> None:
    spec = _spec(
        metrics=[{"name": "budget", "templateRef": {"name": "nope"}, "thresholdRange": {"max": 1}}]
    )
    harness = Harness(spec)
    status = harness.run(4)
    assert status.phase is Phase.INVALID
    assert "MetricTemplate shop/nope not found" in status.message
    # Found at the first tick, before any write, not when the check first falls due: no weight
    # written, no fault injected or cleared, nothing scaled, no webhook called, the route as it was.
    assert harness.router.writes == []
    assert harness.router.fault_writes == []
    assert harness.router.weights[ROUTE] == {"v1": 100, "v2": 0}
    assert harness.workloads.scaled_down == []
    assert harness.webhooks.calls == []
    assert [n.reason for _, n in harness.notifier.sent] == ["InvalidSpec"]


def test_a_template_metric_uses_its_template_query() -> None:
    spec = _spec(
        metrics=[
            {
                "name": "budget",
                "templateRef": {"name": "budget"},
                "templateVariables": {"code": "5.."},
                "thresholdRange": {"max": 100},
            }
        ]
    )
    harness = Harness(spec)
    harness.store.templates[("shop", "budget")] = MetricTemplate.model_validate(
        {
            "metadata": {"name": "budget", "namespace": "shop"},
            "spec": {
                "provider": {"prometheus": {"address": "http://127.0.0.1:9"}},
                "query": 'x{s="{{ subset }}",c="{{ code }}"}[{{ interval }}]',
            },
        }
    )
    harness.run(4)
    assert harness.template_metrics.asked[0] == 'x{s="v2",c="5.."}[1m]'
    assert harness.metrics.asked == []


def _template_spec() -> CanarySpec:
    return _spec(
        metrics=[
            {"name": "budget", "templateRef": {"name": "budget"}, "thresholdRange": {"max": 1}}
        ]
    )


def _template(provider: dict[str, Any]) -> MetricTemplate:
    return MetricTemplate.model_validate(
        {
            "metadata": {"name": "budget", "namespace": "shop"},
            "spec": {"provider": provider, "query": "up"},
        }
    )


def test_a_provider_without_an_adapter_is_invalid_and_never_asked_of_prometheus() -> None:
    """The seam: a backend this controller has no adapter for is InvalidSpec, not Prometheus."""
    harness = Harness(_template_spec())
    harness.sources.metrics = {}
    harness.store.templates[("shop", "budget")] = _template(
        {"prometheus": {"address": "http://127.0.0.1:9"}}
    )
    status = harness.run(4)
    assert status.phase is Phase.INVALID
    assert "provider prometheus has no adapter in this controller" in status.message
    assert harness.metrics.asked == []
    assert harness.template_metrics.asked == []


def test_a_provider_secret_that_is_missing_is_invalid() -> None:
    """A template whose credentials cannot be read says which Secret, and patches nothing more."""
    harness = Harness(_template_spec())

    def needs_secret(backend: PrometheusProvider, namespace: str) -> Any:
        assert backend.bearer_token is not None
        return harness.sources.secrets.value(namespace, backend.bearer_token)

    harness.sources.metrics = {PrometheusProvider: needs_secret}
    harness.store.templates[("shop", "budget")] = _template(
        {"prometheus": {"address": "https://m", "bearerToken": {"name": "tok", "key": "t"}}}
    )
    status = harness.run(4)
    assert status.phase is Phase.INVALID
    assert "Secret shop/tok has no key 't'" in status.message


def test_an_unavailable_backend_skips_the_tick_without_writing() -> None:
    harness = Harness(_spec())

    def down(ref: RouteRef) -> Any:
        raise Unavailable("API server down")

    harness.router.read = down  # type: ignore[method-assign]
    assert harness.reconciler.tick(KEY) is None
    assert harness.store.status_writes == []


@pytest.mark.parametrize("kind", [MeasurementKind.NO_DATA, MeasurementKind.ERROR])
def test_prometheus_answers_without_a_value_fail_the_check(kind: MeasurementKind) -> None:
    harness = Harness(_spec())
    harness.metrics.answer = Measurement(kind, message="connection refused")
    status = harness.run(10)
    assert status.phase is Phase.FAILED
    assert any(n.reason == "MetricNoData" for _, n in harness.notifier.sent)
