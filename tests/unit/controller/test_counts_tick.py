"""Comparing checks through the whole tick: the Reconciler with fake ports, and a fake
Prometheus that answers each count from the window its query names (the `@` moments), as a
real one would for steady traffic: the engine's verdict follows from the counts observe read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from canary.api import builtins
from canary.api.comparison import ComparisonVerdict
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Phase
from canary.controller.reconcile import Reconciler
from canary.controller.sources import Sources
from canary.engine.observation import Measurement
from canary.fakes import (
    FakeClock,
    FakeNotifier,
    FakeRouter,
    FakeSecrets,
    FakeStore,
    FakeWebhooks,
    FakeWorkloads,
)
from canary.ports import CanaryKey, RouteRef, StoredCanary, SubsetRef

KEY = CanaryKey("shop", "reviews")
ROUTE = RouteRef(
    namespace="shop",
    virtual_service="reviews",
    host="reviews",
    route=None,
    destination_rule="reviews",
    subsets=(SubsetRef("v1"), SubsetRef("v2")),
)
_MOMENT = re.compile(r"@ ([0-9]+[.][0-9]+)")


@dataclass
class SteadyTraffic:
    """`rps` requests a second split as the route's weights say, each side failing at its rate."""

    router: FakeRouter
    rps: float = 100.0
    bad_rate: dict[str, float] = field(default_factory=lambda: {"v1": 0.01, "v2": 0.01})
    asked: list[str] = field(default_factory=list)

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        self.asked.append(query)
        moments = [float(moment) for moment in _MOMENT.findall(query)]
        if len(moments) != 2:
            raise AssertionError(f"not a count over a window: {query}")
        now, since = moments
        side = "v2" if "[|]v2[|]" in query else "v1"
        share = self.router.weights[ROUTE][side] / 100
        requests = int(self.rps * share * (now - since))
        if 'envoy_response_code_class="5"' in query:
            return Measurement.of(int(requests * self.bad_rate[side]), query=query)
        return Measurement.of(requests, query=query)


class NoSuchBucket(SteadyTraffic):
    """A histogram without the bound's bucket: the +Inf bucket answers, the bound's does not."""

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        if "le=~" in query:
            self.asked.append(query)
            return Measurement.no_data(query=query, message="the query matched no series")
        return super().measure(query, requests_query=requests_query)


SUCCESS = {"name": "request-success-rate", "compare": {}}


def spec(metric: dict[str, Any]) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "reviews"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {
                "interval": "60s",
                "checkInterval": "10s",
                "threshold": 5,
                "stepWeights": [20, 50],
                "metrics": [metric],
            },
        }
    )


def rollout(
    bad_rate: dict[str, float],
    ticks: int,
    metric: dict[str, Any] = SUCCESS,
    world: type[SteadyTraffic] = SteadyTraffic,
) -> tuple[CanaryStatus, SteadyTraffic]:
    router = FakeRouter(weights={ROUTE: {"v1": 100, "v2": 0}})
    traffic = world(router, bad_rate=bad_rate)
    store = FakeStore(stored={KEY: StoredCanary(KEY, spec(metric), CanaryStatus())})
    clock = FakeClock()
    reconciler = Reconciler(
        store=store,
        workloads=FakeWorkloads(),
        router=router,
        notifier=FakeNotifier(),
        clock=clock,
        sources=Sources(builtin=traffic, webhooks=FakeWebhooks(), secrets=FakeSecrets()),
        query_set=builtins.QuerySet.ENVOY,
    )
    for _ in range(ticks):
        reconciler.tick(KEY)
        clock.advance(10)
        if store.stored[KEY].status.phase in (Phase.FAILED, Phase.SUCCEEDED):
            break
    return store.stored[KEY].status, traffic


def test_a_canary_failing_far_more_than_stable_is_rolled_back_on_the_counts_read() -> None:
    status, traffic = rollout({"v1": 0.01, "v2": 0.2}, ticks=30)
    assert status.phase is Phase.FAILED
    (test,) = status.sequential
    assert test.verdict is ComparisonVerdict.REGRESSION
    # At the first judged tick: 10 s of the canary's 20% of 100 requests a second.
    assert test.decided_after == 200
    # Only counts were asked: the compare-only check has no value query.
    assert traffic.asked
    assert all(query.startswith("clamp_min(") for query in traffic.asked)


@pytest.mark.parametrize("rate", [0.0, 0.02])
def test_a_canary_like_stable_is_promoted(rate: float) -> None:
    status, _ = rollout({"v1": rate, "v2": rate}, ticks=40)
    assert status.phase is Phase.SUCCEEDED
    (test,) = status.sequential
    assert test.verdict is not ComparisonVerdict.REGRESSION
    # Every request of both steps counted once: 2 windows of 60 s, at 20% then 50% of 100/s.
    assert test.canary_requests == 100 * (0.2 * 60 + 0.5 * 60)


def test_a_latency_bound_that_is_no_bucket_fails_the_check_saying_so() -> None:
    slow = {"name": "request-duration", "compare": {"slowerThan": "300ms"}}
    status, _ = rollout({"v1": 0.0, "v2": 0.0}, ticks=20, metric=slow, world=NoSuchBucket)
    assert status.phase is Phase.FAILED
    assert status.history
    for record in status.history:
        assert record.message == (
            "canary bad events: compare.slowerThan: the histogram has no bucket le=300 (ms); "
            "slowerThan must be one of the histogram's bucket bounds"
        )
