"""What a tick leaves when things go wrong mid-rollout: a Canary made Invalid after weights
moved, a tick that raises, a status that cannot be read. Fake ports, the real reconciler."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from canary.api import builtins
from canary.api.commands import Command, Verb
from canary.api.metric_template import MetricTemplate, PrometheusProvider
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Phase
from canary.controller import reconcile
from canary.controller.reconcile import Reconciler
from canary.controller.sources import Sources, promql
from canary.engine import conditions
from canary.engine.observation import Measurement
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
TEMPLATE = MetricTemplate.model_validate(
    {
        "metadata": {"name": "budget", "namespace": "shop"},
        "spec": {"query": "budget", "provider": {"prometheus": {"address": "http://p:9090"}}},
    }
)


def _spec(**overrides: Any) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "accounts"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "progressDeadline": "60s",
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "stepWeights": [20, 60],
                "metrics": [
                    {
                        "name": "budget",
                        "templateRef": {"name": "budget"},
                        "thresholdRange": {"max": 1},
                    }
                ],
            },
            **overrides,
        }
    )


class _Answer(FakeMetrics):
    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        return Measurement.of(0.5, query=query, samples=1000)


class World:
    def __init__(self, spec: CanarySpec | None = None) -> None:
        self.store = FakeStore(stored={KEY: StoredCanary(KEY, spec or _spec(), CanaryStatus())})
        self.store.templates[("shop", "budget")] = TEMPLATE
        self.router = FakeRouter(weights={ROUTE: {"v1": 100, "v2": 0}})
        self.notifier = FakeNotifier()
        self.clock = FakeClock()
        metrics = _Answer()
        self.reconciler = Reconciler(
            store=self.store,
            workloads=FakeWorkloads(),
            router=self.router,
            notifier=self.notifier,
            clock=self.clock,
            sources=Sources(
                builtin=metrics,
                webhooks=FakeWebhooks(),
                secrets=FakeSecrets(),
                metrics={PrometheusProvider: promql(lambda backend, namespace: metrics)},
            ),
            query_set=builtins.QuerySet.ENVOY,
        )

    def run(self, ticks: int, every: float = 5) -> CanaryStatus:
        for _ in range(ticks):
            self.reconciler.tick(KEY)
            self.clock.advance(every)
        return self.status

    @property
    def status(self) -> CanaryStatus:
        return self.store.stored[KEY].status

    def reasons(self) -> list[str]:
        return [notice.reason for _, notice in self.notifier.sent]

    def until_weight(self, weight: int, ticks: int = 20) -> None:
        for _ in range(ticks):
            if (
                self.router.weights[ROUTE].get("v2") == weight
                and self.status.canary_weight == weight
            ):
                return
            self.run(1)
        raise AssertionError(f"never reached {weight}: {self.router.weights[ROUTE]}")


def _condition(status: CanaryStatus, type_: str) -> tuple[str, str, str]:
    found = [c for c in status.conditions if c.type == type_]
    assert found, f"no {type_} condition in {[c.type for c in status.conditions]}"
    return found[0].status, found[0].reason, found[0].message


def test_a_template_deleted_mid_rollout_sends_100_back_to_stable_and_says_why() -> None:
    world = World()
    world.until_weight(20)
    del world.store.templates[("shop", "budget")]
    writes_before = len(world.router.writes)
    status = world.run(1)
    assert status.phase is Phase.INVALID
    assert world.router.weights[ROUTE] == {"v1": 100, "v2": 0}
    assert [w.canary_weight for _, w in world.router.writes[writes_before:]] == [0]
    state, reason, message = _condition(status, conditions.STABLE_RESTORED)
    assert (state, reason) == ("True", "InvalidSpec")
    assert message == "invalid with 20% on v2: 100% sent back to v1 until the Canary is fixed"
    assert world.reasons()[-2:] == ["InvalidSpec", "StableRestored"]
    assert status.canary_weight == 0
    # Nothing else: no further write, no new event, while it stays invalid.
    sent = len(world.notifier.sent)
    world.run(3)
    assert len(world.router.writes) == writes_before + 1
    assert len(world.notifier.sent) == sent


def test_the_revert_is_level_triggered_while_invalid() -> None:
    world = World()
    world.until_weight(20)
    del world.store.templates[("shop", "budget")]
    world.run(1)
    world.router.weights[ROUTE] = {"v1": 70, "v2": 30}  # someone moved it again
    world.run(1)
    assert world.router.weights[ROUTE] == {"v1": 100, "v2": 0}


def test_a_fixed_canary_starts_over_and_forgets_the_revert() -> None:
    world = World()
    world.until_weight(20)
    del world.store.templates[("shop", "budget")]
    world.run(2)
    world.store.templates[("shop", "budget")] = TEMPLATE
    world.until_weight(20)
    assert world.status.phase is Phase.PROGRESSING
    assert all(c.type != conditions.STABLE_RESTORED for c in world.status.conditions)


def test_the_revert_names_only_the_subsets_it_writes_without_labels() -> None:
    """So the router can add nothing to the DestinationRule while the Canary is Invalid."""
    spec = _spec(
        stable={"subset": "v1", "labels": {"version": "v1"}},
        canary={"subset": "v2", "labels": {"version": "v2"}},
    )
    world = World(spec)
    labelled = dataclasses.replace(
        ROUTE,
        subsets=(SubsetRef("v1", (("version", "v1"),)), SubsetRef("v2", (("version", "v2"),))),
    )
    world.router.weights = {labelled: {"v1": 100, "v2": 0}, ROUTE: {"v1": 80, "v2": 20}}
    for _ in range(20):
        world.run(1)
        if world.router.weights[labelled].get("v2") == 20:
            break
    world.router.weights[ROUTE] = dict(world.router.weights[labelled])
    del world.store.templates[("shop", "budget")]
    # The fake keeps a split per RouteRef: the revert reads through the labelled ref (observe)
    # and writes through the unlabelled one.
    world.run(1)
    ref, weights = world.router.writes[-1]
    assert ref.subsets == (SubsetRef("v1"), SubsetRef("v2"))
    assert (weights.stable_subset, weights.canary_subset, weights.canary_weight) == ("v1", "v2", 0)


def test_a_spec_that_stops_parsing_mid_rollout_says_the_split_is_left_unjudged() -> None:
    world = World()
    world.until_weight(20)
    current = world.store.stored[KEY]
    world.store.stored[KEY] = StoredCanary(
        KEY, None, current.status, problems=("spec.analysis.interval: not a duration",)
    )
    writes = len(world.router.writes)
    status = world.run(2)
    assert status.phase is Phase.INVALID
    assert len(world.router.writes) == writes
    state, reason, message = _condition(status, conditions.STABLE_RESTORED)
    assert (state, reason) == ("False", "RouteUnknown")
    assert message == "20% may still go to v2, unjudged: its spec does not parse"


def test_a_canary_that_was_never_moved_is_invalid_without_a_revert() -> None:
    world = World()
    del world.store.templates[("shop", "budget")]
    status = world.run(3)
    assert status.phase is Phase.INVALID
    assert world.router.writes == []
    assert all(c.type != conditions.STABLE_RESTORED for c in status.conditions)


def _raising(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Makes decide raise while the returned flag is set."""
    failing = [True]
    real = reconcile.decide

    def decide(*args: Any, **kwargs: Any) -> Any:
        if failing[0]:
            raise OverflowError("date value out of range")
        return real(*args, **kwargs)

    monkeypatch.setattr(reconcile, "decide", decide)
    return failing


def test_a_failing_tick_is_a_condition_and_one_event(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    world.until_weight(20)
    _raising(monkeypatch)
    status = world.run(3)
    assert _condition(status, conditions.TICK_FAILED) == (
        "True",
        "TickFailed",
        "OverflowError: date value out of range",
    )
    assert world.reasons().count("TickFailed") == 1
    assert status.phase is Phase.PROGRESSING


def test_ticks_failing_past_the_deadline_roll_back_and_recover(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    world.until_weight(20)
    failing = _raising(monkeypatch)
    # The step's deadline is its interval plus the progress deadline (10 s + 60 s).
    status = world.run(20)
    assert status.phase is Phase.ROLLING_BACK
    assert "passed its deadline while ticks kept failing" in status.message
    assert world.router.weights[ROUTE] == {"v1": 100, "v2": 0}
    assert "RollingBack" in world.reasons()
    failing[0] = False
    status = world.run(3)
    assert status.phase is Phase.FAILED
    assert _condition(status, conditions.TICK_FAILED)[:2] == ("False", "TickSucceeded")
    assert _condition(status, conditions.ROLLBACK_VERIFIED)[0] == "True"


def test_ticks_failing_in_rolling_back_resend_the_revert_then_fail_unverified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    world.until_weight(20)
    _raising(monkeypatch)
    world.run(20)
    assert world.status.phase is Phase.ROLLING_BACK
    world.router.weights[ROUTE] = {"v1": 80, "v2": 20}
    world.run(1)
    assert world.router.weights[ROUTE] == {"v1": 100, "v2": 0}
    status = world.run(20)
    assert status.phase is Phase.FAILED
    assert _condition(status, conditions.ROLLBACK_VERIFIED)[:2] == ("False", "RollbackUnverified")


def _unreadable(world: World, command: Command | None = None) -> None:
    current = world.store.stored[KEY]
    world.store.stored[KEY] = StoredCanary(
        KEY,
        current.spec,
        CanaryStatus(),
        command=command,
        status_error="status.phase: 'Sideways' is not one of Initializing, Progressing",
    )


def test_an_unreadable_status_is_a_condition_never_a_silent_restart() -> None:
    world = World()
    world.until_weight(20)
    writes, status_writes = len(world.router.writes), len(world.store.status_writes)
    _unreadable(world)
    world.run(4)
    assert len(world.router.writes) == writes
    assert len(world.store.status_writes) == status_writes
    assert len(world.store.condition_writes) == 1
    (_, (condition,)) = world.store.condition_writes[0]
    assert condition.type == conditions.STATUS_UNREADABLE
    assert condition.message.startswith(
        "the stored status cannot be read (status.phase: 'Sideways' is not one of"
    )
    assert "`canary retry`" in condition.message
    assert world.reasons().count("StatusUnreadable") == 1


def test_canary_retry_starts_an_unreadable_status_over_on_purpose() -> None:
    world = World()
    world.until_weight(20)
    _unreadable(world, Command(verb=Verb.RETRY, id="r-1"))
    world.run(1)
    status = world.status
    assert status.last_command is not None
    assert status.last_command.accepted
    assert status.phase is Phase.INITIALIZING or status.phase is Phase.PROGRESSING
    assert "RolloutRetried" in world.reasons()
