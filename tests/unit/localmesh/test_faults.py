"""Local faults: a record per host with its expiry, served to the targeted subset's instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from canary.demo import scenario
from canary.engine.actions import Fault, InjectFault
from canary.errors import InvalidSpec
from canary.localmesh import faults
from canary.localmesh.router import LocalRouter
from canary.localmesh.store import LocalStore
from canary.ports import RouteRef, SubsetRef

from .test_store_router import FakePlane

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REF = RouteRef(
    namespace="default",
    virtual_service="demo",
    host="demo",
    route="primary",
    subsets=(SubsetRef("v1"), SubsetRef("v2")),
)


def inject(
    router: LocalRouter, *, subset: str = "v2", seconds: float = 10, pods: int | None = None
) -> None:
    fault = Fault(abort_status=503, abort_percent=50)
    expires_at = NOW + timedelta(seconds=seconds)
    router.inject(REF, InjectFault("eject", subset, fault, expires_at, pods))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "state")
    for body in scenario.objects():
        store.put(body)
    return store


def test_a_fault_goes_to_the_subsets_labels_with_its_expiry(store: LocalStore) -> None:
    plane = FakePlane()
    router = LocalRouter(store, plane)
    inject(router)
    [(host, labels, config, pods)] = plane.faults
    assert pods is None
    assert (host, labels) == ("demo", {"version": "v2"})
    assert config == {
        "abort": {"http_status": 503, "percentage": {"numerator": 50, "denominator": "HUNDRED"}}
    }
    [active] = router.faults(REF)
    assert (active.experiment, active.subset) == ("eject", "v2")
    assert active.expires_at == NOW + timedelta(seconds=10)


def test_a_new_process_on_the_same_state_sees_and_serves_the_fault(store: LocalStore) -> None:
    inject(LocalRouter(store, FakePlane()))
    plane = FakePlane()
    assert LocalRouter(LocalStore(store.root), plane).faults(REF)
    assert len(plane.faults) == 1


def test_clear_removes_it_everywhere(store: LocalStore) -> None:
    plane = FakePlane()
    router = LocalRouter(store, plane)
    inject(router)
    router.clear_faults(REF)
    assert router.faults(REF) == ()
    assert plane.faults == []
    router.clear_faults(REF)  # nothing there: still fine


def test_the_sweep_removes_only_expired_faults(store: LocalStore) -> None:
    plane = FakePlane()
    router = LocalRouter(store, plane)
    inject(router, seconds=10)
    assert router.sweep_faults(NOW + timedelta(seconds=5)) == ()
    assert router.faults(REF)
    assert router.sweep_faults(NOW + timedelta(seconds=10)) == ("default/demo: eject",)
    assert router.faults(REF) == ()


def test_an_unreadable_expiry_counts_as_expired(store: LocalStore) -> None:
    router = LocalRouter(store, FakePlane())
    inject(router)
    body = store.get(faults.KIND, "default", "demo")
    assert body is not None
    body["spec"]["expiresAt"] = "soon"
    store.put(body)
    assert router.sweep_faults(NOW) == ("default/demo: eject",)


def test_the_stable_subset_is_never_targeted(store: LocalStore) -> None:
    plane = FakePlane()
    with pytest.raises(InvalidSpec, match="stable subset"):
        inject(LocalRouter(store, plane), subset="v1")
    assert plane.faults == []
    assert store.objects(faults.KIND) == []


def test_a_subset_the_destination_rule_lacks_is_refused(store: LocalStore) -> None:
    with pytest.raises(InvalidSpec, match="no subset v3"):
        inject(LocalRouter(store, FakePlane()), subset="v3")


def test_a_count_of_pods_travels_with_the_fault_and_survives_a_new_process(
    store: LocalStore,
) -> None:
    inject(LocalRouter(store, FakePlane()), pods=1)
    plane = FakePlane()
    LocalRouter(LocalStore(store.root), plane).faults(REF)
    [(_, _, _, pods)] = plane.faults
    assert pods == 1
