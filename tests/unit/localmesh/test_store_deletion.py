"""The local store's finalizers and uids, as the API server's: a deleted Canary stays until the
controller lets it go; the local router's faults name their owner and are cleared by it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from canary.demo import scenario
from canary.engine.actions import Fault, InjectFault
from canary.localmesh.router import LocalRouter
from canary.localmesh.store import LocalStore
from canary.ports import FINALIZER, CanaryKey, Owner, RouteRef, SubsetRef

from .test_store_router import FakePlane

KEY = CanaryKey("default", "demo")


def _store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "state")
    for body in (scenario.virtual_service(), scenario.destination_rule(), scenario.canary()):
        store.put(body)
    return store


def test_a_canary_held_by_the_finalizer_is_marked_deleted_then_goes_when_let_go(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    first = store.canary(KEY)
    assert first is not None
    assert first.uid
    store.add_finalizer(KEY)
    store.add_finalizer(KEY)
    held = store.canary(KEY)
    assert held is not None
    assert held.finalizers == (FINALIZER,)
    assert held.generation == first.generation
    assert held.uid == first.uid

    assert store.delete("Canary", KEY.namespace, KEY.name)
    deleting = store.canary(KEY)
    assert deleting is not None
    assert deleting.deleting_since is not None
    assert deleting.generation == first.generation + 1
    # A deleting Canary takes no new finalizer, and a replacement keeps the deletion.
    store.put(scenario.canary())
    store.add_finalizer(KEY)
    again = store.canary(KEY)
    assert again is not None
    assert again.deleting_since == deleting.deleting_since

    store.remove_finalizer(KEY)
    assert store.canary(KEY) is None


def test_a_canary_without_finalizers_is_removed_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.delete("Canary", KEY.namespace, KEY.name)
    assert store.canary(KEY) is None
    assert not store.delete("Canary", KEY.namespace, KEY.name)


def test_local_faults_are_cleared_by_their_owner(tmp_path: Path) -> None:
    store = _store(tmp_path)
    plane = FakePlane()
    router = LocalRouter(store, plane)
    ref = RouteRef(
        namespace="default",
        virtual_service="demo",
        host="demo",
        route="primary",
        subsets=(SubsetRef("v1"), SubsetRef("v2")),
        owner=Owner("demo", "uid-1"),
    )
    expires = datetime.now(UTC) + timedelta(minutes=1)
    router.inject(
        ref, InjectFault("eject", "v2", Fault(abort_status=503, abort_percent=50), expires)
    )
    assert len(plane.faults) == 1
    router.clear_faults_of(CanaryKey("default", "other"))
    assert len(router.faults(ref)) == 1
    router.clear_faults_of(KEY)
    assert router.faults(ref) == ()
    assert plane.faults == []
