"""A fault's owner: the Canary whose fault the EnvoyFilter holds, by name and uid.

The real API server keeps the reference as written (tests/e2e/istio/test_chaos_delete.py);
these pin the reference, its replacement when another Canary of the same service writes the
shared object, clearing by owner, and the sweep that reads the cache once it has synced.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from canary.adapters.kube import faults
from canary.adapters.kube.rest import ENVOY_FILTER
from canary.ports import CanaryKey, Owner

from .test_faults import EF_PATH, NOW, REF, _inject, _router

OWNED = dataclasses.replace(REF, owner=Owner("demo", "uid-1"))
REFERENCE = {
    "apiVersion": "canary.dev/v1alpha1",
    "kind": "Canary",
    "name": "demo",
    "uid": "uid-1",
    "controller": True,
}


def test_an_injected_fault_names_its_canary_as_owner_with_its_uid() -> None:
    router, api, _ = _router()
    router.inject(OWNED, _inject())
    stored = api.objects[f"{EF_PATH}/canary-fault-demo-dr"]
    assert stored["metadata"]["ownerReferences"] == [REFERENCE]
    # No blockOwnerDeletion: it would need update on canaries/finalizers, which the
    # controller is not granted, and would hold a foreground deletion of the Canary.
    assert "blockOwnerDeletion" not in stored["metadata"]["ownerReferences"][0]


def test_a_route_without_an_owner_writes_no_reference() -> None:
    body = faults.envoy_filter(REF, _inject(), {"app": "demo", "version": "v2"})
    assert "ownerReferences" not in body["metadata"]


def test_another_canary_of_the_service_takes_the_shared_object_over_owner_and_all() -> None:
    """Two Canaries on two routes of one service share one EnvoyFilter (one per
    DestinationRule); its owner is always the one whose fault it holds."""
    router, api, _ = _router()
    router.inject(OWNED, _inject())
    other = dataclasses.replace(REF, route="secondary", owner=Owner("demo-b", "uid-2"))
    router.inject(other, _inject(abort=500))
    stored = api.objects[f"{EF_PATH}/canary-fault-demo-dr"]
    assert [ref["uid"] for ref in stored["metadata"]["ownerReferences"]] == ["uid-2"]
    # Clearing by the first Canary's name leaves the second one's fault alone.
    router.clear_faults_of(CanaryKey("shop", "demo"))
    assert f"{EF_PATH}/canary-fault-demo-dr" in api.objects
    router.clear_faults_of(CanaryKey("shop", "demo-b"))
    assert api.objects == {}
    assert router.faults(REF) == ()


def test_clearing_by_owner_stays_in_the_owners_namespace() -> None:
    router, api, _ = _router()
    router.inject(OWNED, _inject())
    router.clear_faults_of(CanaryKey("elsewhere", "demo"))
    assert f"{EF_PATH}/canary-fault-demo-dr" in api.objects


def test_a_synced_cache_makes_the_periodic_sweep_cost_no_list() -> None:
    router, api, cache = _router()
    router.inject(OWNED, _inject())
    cache.of(ENVOY_FILTER).synced.set()
    api.requests.clear()
    assert router.sweep_faults(NOW) == ()
    assert api.requests == []
    removed = router.sweep_faults(NOW + timedelta(hours=1))
    assert removed == ("shop/canary-fault-demo-dr",)
    assert api.requests == [("DELETE", f"{EF_PATH}/canary-fault-demo-dr")]
