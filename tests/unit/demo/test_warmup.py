"""The demo's wait before its controller starts: through the reconciler's own ports, bounded."""

from __future__ import annotations

import time
from dataclasses import dataclass

from canary.api.spec import CanarySpec, TargetRef
from canary.api.status import CanaryStatus
from canary.controller.preflight import Preflight
from canary.controller.reconcile import Reconciler
from canary.controller.sources import Sources
from canary.demo import warmup
from canary.engine.observation import Measurement, TargetState
from canary.errors import InvalidSpec
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
from canary.ports import CanaryKey, StoredCanary

KEY = CanaryKey("shop", "reviews")
STABLE_SERIES = (
    'count(istio_requests_total{reporter="destination",destination_workload_namespace="shop",'
    'destination_service_name="reviews",destination_version="v1"})'
)
SPEC = CanarySpec.model_validate(
    {
        "service": {"host": "reviews"},
        "stable": {"subset": "v1", "labels": {"version": "v1"}},
        "canary": {"subset": "v2", "labels": {"version": "v2"}},
        "analysis": {
            "stepWeights": [10, 50],
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
        },
    }
)


@dataclass
class ScrapedAfter(FakeMetrics):
    """No series until it has been asked `misses` times, as a Prometheus before its scrape."""

    misses: int = 0

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        self.asked.append(query)
        if query == STABLE_SERIES and len(self.asked) > self.misses:
            return Measurement.of(3.0, query=query)
        return Measurement.no_data(query=query)


class MissingTarget(FakeWorkloads):
    def target(self, namespace: str, target: TargetRef) -> TargetState:
        raise InvalidSpec(f"targetRef: Deployment {namespace}/{target.name} not found")


def reconciler(
    metrics: FakeMetrics,
    *,
    applied: bool = True,
    spec: CanarySpec | None = SPEC,
    workloads: FakeWorkloads | None = None,
) -> Reconciler:
    store = FakeStore({KEY: StoredCanary(KEY, spec, CanaryStatus())})
    return Reconciler(
        store=store,
        workloads=workloads or FakeWorkloads(),
        router=FakeRouter(applied=applied),
        notifier=FakeNotifier(),
        clock=FakeClock(),
        sources=Sources(builtin=metrics, webhooks=FakeWebhooks(), secrets=FakeSecrets()),
        preflight=Preflight(),
    )


def test_it_waits_until_the_stable_series_is_scraped() -> None:
    metrics = ScrapedAfter(misses=3)
    waited = warmup.wait(reconciler(metrics), KEY, limit=5.0, poll=0.01)
    assert waited.ready, waited.line()
    assert metrics.asked == [STABLE_SERIES] * 4
    assert waited.line().startswith("mesh ready for preflight after ")
    assert "metric series ok" in waited.line()


def test_it_gives_up_in_time_and_says_what_still_fails() -> None:
    started = time.monotonic()
    waited = warmup.wait(reconciler(FakeMetrics()), KEY, limit=0.3, poll=0.05)
    assert time.monotonic() - started < 1.0
    assert not waited.ready
    line = waited.line()
    assert "mesh not ready for preflight after 0.3s" in line, line
    assert "✗ metric series: request-success-rate: no series" in line, line
    assert line.endswith("starting the controller, whose preflight holds the rollout until it is")


def test_nothing_is_asked_before_the_route_is_served() -> None:
    metrics = ScrapedAfter()
    waited = warmup.wait(reconciler(metrics, applied=False), KEY, limit=0.2, poll=0.05)
    assert not waited.ready
    assert metrics.asked == []
    assert "(the route is not served yet)" in waited.line()


def test_a_canary_that_does_not_parse_is_left_to_the_controller() -> None:
    metrics = ScrapedAfter()
    waited = warmup.wait(reconciler(metrics, spec=None), KEY, limit=5.0)
    assert (waited.ready, waited.seconds, metrics.asked) == (False, 0.0, [])
    assert waited.line() == "mesh: Canary shop/reviews cannot be read; not waiting for the mesh"


def test_a_canary_the_controller_makes_invalid_is_not_waited_for() -> None:
    metrics = ScrapedAfter()
    target = SPEC.canary.model_copy(update={"target_ref": TargetRef(name="reviews-v2")})
    spec = SPEC.model_copy(update={"canary": target})
    waited = warmup.wait(reconciler(metrics, spec=spec, workloads=MissingTarget()), KEY, limit=5.0)
    assert (waited.ready, waited.seconds, metrics.asked) == (False, 0.0, [])
    assert waited.line() == (
        "mesh: not waiting: spec.canary.targetRef: Deployment shop/reviews-v2 not found"
    )
