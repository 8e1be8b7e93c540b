"""Deletion through the loop with fake ports: the finalizer's life, and faults that never stay.

The engine's rules are in tests/unit/engine/test_deletion.py; these check what the controller
does with them: the finalizer goes on before anything is written, comes off only once the
deletion's writes went through, a spec that does not parse still lets the Canary go, the
scheduler sweeps expired faults on its own, and a stopping leader takes every fault off.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

from canary.api import builtins
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Phase
from canary.controller.reconcile import Reconciler
from canary.controller.scheduler import Controller
from canary.controller.sources import Sources
from canary.engine.actions import Fault, InjectFault
from canary.engine.observation import ActiveFault
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
from canary.ports import FINALIZER, CanaryKey, Owner, RouteRef, StoredCanary, SubsetRef

KEY = CanaryKey("shop", "accounts")
UID = "0b6f3c52-uid"
ROUTE = RouteRef(
    namespace="shop",
    virtual_service="accounts",
    host="accounts",
    route=None,
    destination_rule="accounts",
    subsets=(SubsetRef("v1"), SubsetRef("v2")),
    owner=Owner("accounts", UID),
)


def _spec(**extra: Any) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "accounts"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {"interval": "10s", "stepWeights": [20, 60]},
            **extra,
        }
    )


class _Journal(FakeStore):
    """A store that also records the order of finalizer writes among the router's writes."""

    journal: list[str]

    def add_finalizer(self, key: CanaryKey) -> None:
        self.journal.append("add_finalizer")
        super().add_finalizer(key)

    def remove_finalizer(self, key: CanaryKey) -> None:
        self.journal.append("remove_finalizer")
        super().remove_finalizer(key)


class _Router(FakeRouter):
    journal: list[str]
    refuse_clearing: bool = False

    def set_weights(self, ref: RouteRef, weights: Any) -> None:
        self.journal.append(f"weights {weights.canary_weight}")
        super().set_weights(ref, weights)

    def clear_faults(self, ref: RouteRef) -> None:
        if self.refuse_clearing:
            raise Unavailable("API server: 503", retry_after=1.0)
        self.journal.append("clear_faults")
        super().clear_faults(ref)


class Loop:
    def __init__(self, spec: CanarySpec | None, *, problems: tuple[str, ...] = ()) -> None:
        journal: list[str] = []
        self.journal = journal
        stored = StoredCanary(KEY, spec, CanaryStatus(), generation=1, problems=problems, uid=UID)
        self.store = _Journal(stored={KEY: stored})
        self.store.journal = journal
        self.router = _Router(weights={ROUTE: {"v1": 100, "v2": 0}})
        self.router.journal = journal
        self.clock = FakeClock()
        metrics = FakeMetrics()
        self.reconciler = Reconciler(
            store=self.store,
            workloads=FakeWorkloads(),
            router=self.router,
            notifier=FakeNotifier(),
            clock=self.clock,
            sources=Sources(
                builtin=metrics, webhooks=FakeWebhooks(), secrets=FakeSecrets(), metrics={}
            ),
            query_set=builtins.QuerySet.ENVOY,
        )

    def tick(self, every: float = 1.0) -> None:
        self.reconciler.tick(KEY)
        self.clock.advance(every)

    def delete(self) -> None:
        current = self.store.stored[KEY]
        self.store.stored[KEY] = dataclasses.replace(
            current, deleting_since=self.clock.now(), generation=current.generation + 1
        )

    def put_fault(self) -> None:
        expires = self.clock.now() + timedelta(seconds=30)
        fault = InjectFault("eject", "v2", Fault(abort_status=503, abort_percent=100), expires)
        self.router.inject(ROUTE, fault)


def test_the_finalizer_goes_on_before_the_first_write_and_only_once() -> None:
    loop = Loop(_spec())
    for _ in range(3):
        loop.tick()
    assert loop.journal[0] == "add_finalizer", loop.journal
    assert loop.journal.count("add_finalizer") == 1
    assert "weights 20" in loop.journal
    assert loop.store.stored[KEY].finalizers == (FINALIZER,)


def test_a_canary_deleted_mid_rollout_is_reverted_its_fault_cleared_then_let_go() -> None:
    loop = Loop(_spec())
    loop.tick()
    loop.tick()
    assert loop.router.weights[ROUTE] == {"v1": 80, "v2": 20}
    loop.put_fault()
    loop.delete()
    loop.tick()
    assert loop.router.faults_in_place == {}
    assert loop.router.weights[ROUTE] == {"v1": 100, "v2": 0}
    assert KEY in loop.store.stored
    loop.tick()
    assert KEY not in loop.store.stored
    tail = loop.journal[loop.journal.index("clear_faults") :]
    assert tail == ["clear_faults", "weights 0", "remove_finalizer"], loop.journal
    # The status was written before the Canary went: the last one says how it ended.
    _, last = loop.store.status_writes[-1]
    assert last.message == "deleted (onDelete: revert): 100% of the traffic is back on v1"


def test_the_finalizer_stays_while_a_write_of_the_deletion_fails() -> None:
    loop = Loop(_spec())
    loop.tick()
    loop.tick()
    loop.put_fault()
    loop.delete()
    loop.router.refuse_clearing = True
    for _ in range(4):
        loop.tick()
    assert KEY in loop.store.stored
    assert "remove_finalizer" not in loop.journal
    loop.router.refuse_clearing = False
    loop.tick()
    loop.tick()
    assert KEY not in loop.store.stored


def test_a_deleted_canary_whose_spec_does_not_parse_clears_its_faults_by_owner_and_goes() -> None:
    loop = Loop(None, problems=("spec.analysis: Field required",))
    loop.put_fault()
    loop.tick()
    assert loop.store.stored[KEY].status.phase is Phase.INVALID
    # An Invalid Canary's fault is not cleared by the tick (it has no route) but by owner once
    # it is deleted.
    assert loop.router.faults_in_place != {}
    loop.delete()
    loop.tick()
    assert loop.router.faults_in_place == {}
    assert KEY not in loop.store.stored


def test_a_deleting_canary_without_the_finalizer_gets_none_back_and_no_tick() -> None:
    """Deleted before its first tick, or let go already while another finalizer holds it."""
    loop = Loop(_spec())
    loop.delete()
    assert loop.reconciler.tick(KEY) is None
    assert loop.journal == []
    assert loop.store.status_writes == []


def test_the_scheduler_reschedules_a_canary_at_once_when_its_deletion_begins() -> None:
    loop = Loop(_spec())
    controller = Controller(loop.reconciler, resync=3600)
    try:
        controller.sync()
        job = controller.scheduler.get_job(f"canary:{KEY}")
        assert job is not None
        first = controller._jobs[KEY]
        current = loop.store.stored[KEY]
        loop.store.stored[KEY] = dataclasses.replace(current, deleting_since=loop.clock.now())
        controller.sync()
        assert controller._jobs[KEY] != first
        assert controller._jobs[KEY].fingerprint.startswith("deleting:")
    finally:
        controller.scheduler.remove_all_jobs()


def test_expired_faults_are_swept_by_a_job_of_their_own_and_a_stop_can_clear_them_all() -> None:
    loop = Loop(_spec())
    controller = Controller(loop.reconciler, resync=3600, sweep_every=0.05)
    live = RouteRef("shop", "other", "other", None, "other")
    loop.router.faults_in_place[ROUTE] = ActiveFault("eject", "v2", loop.clock.now())
    loop.router.faults_in_place[live] = ActiveFault(
        "x", "v2", loop.clock.now() + timedelta(hours=1)
    )
    loop.clock.advance(1)
    controller.start()
    try:
        job = controller.scheduler.get_job("sweep-faults")
        assert job is not None
        assert job.trigger.interval == timedelta(seconds=0.05)
        loop.router.faults_in_place[ROUTE] = ActiveFault("again", "v2", loop.clock.now())
        loop.clock.advance(1)
        _wait(lambda: ROUTE not in loop.router.faults_in_place)
        assert live in loop.router.faults_in_place
    finally:
        controller.stop(clear_faults=True)
    assert loop.router.faults_in_place == {}


def _wait(done: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_deleted_canary_whose_status_cannot_be_read_still_goes_with_its_faults() -> None:
    """The unreadable-status rule holds a Canary untouched until fixed; not a deleted one."""
    loop = Loop(_spec())
    loop.tick()
    loop.tick()
    loop.put_fault()
    current = loop.store.stored[KEY]
    loop.store.stored[KEY] = dataclasses.replace(
        current, status=CanaryStatus(), status_error="status.phase: not a phase"
    )
    loop.delete()
    loop.tick()
    loop.tick()
    assert KEY not in loop.store.stored
    assert loop.router.faults_in_place == {}
    # No stable subset is known without the status: the weights are left as they were.
    assert loop.router.weights[ROUTE] == {"v1": 80, "v2": 20}
