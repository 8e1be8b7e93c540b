"""A Canary deleted mid-rollout, end to end: `canary run` on a real API server, real Envoys.

Given the demo service in the local mesh (its Pilot fed from the API server, so the weights the
controller writes are the weights Envoy serves) and a Canary part-way through its steps, when
the Canary is deleted (`kubectl delete`), then the controller's finalizer holds it until the
deletion is dealt with: with `onDelete: revert` (the default) the route goes back to 100% on
the stable subset, which real requests through the client Envoy show; with `onDelete: keep`
the split stays (requests still reach the canary) and the fault of a running experiment is
removed. Either way the Canary is then gone: the finalizer came off. The test API server runs
no garbage collector, so the fault's removal here is the controller's own doing.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from canary.adapters.envoy_admin import EnvoyPropagation
from canary.adapters.kube import faults
from canary.adapters.kube.rest import CANARY, ENVOY_FILTER
from canary.engine.actions import Fault, InjectFault
from canary.ports import FINALIZER, Owner, RouteRef
from tests.e2e.kube import harness
from tests.kubeenv.cluster import KubeCluster

REQUESTS = 200
STEP_SECONDS = 14
FILTER = f"{faults.NAME_PREFIX}{harness.SERVICE}"
EXPERIMENT = {
    "name": "abort-v2",
    "atWeight": 10,
    "duration": "12s",
    "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
    "onFailure": "continue",
}


def _count(url: str, requests: int = REQUESTS) -> Counter[tuple[str, int]]:
    """Real requests through the client-side Envoy: (version, status) of each answer."""
    seen: Counter[tuple[str, int]] = Counter()
    for _ in range(requests):
        request = urllib.request.Request(url, headers={"Host": harness.SERVICE})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                body = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read().decode(), exc.code
        version = "v2" if '"v2"' in body else "v1" if '"v1"' in body else "?"
        seen[(version, status)] += 1
    return seen


def _serves(mesh_admin: str, namespace: str, canary_weight: int) -> bool:
    return EnvoyPropagation([mesh_admin]).serves(
        namespace, harness.SERVICE, "primary", {"v1": 100 - canary_weight, "v2": canary_weight}
    )


def _canary_body(kube: KubeCluster, namespace: str) -> dict[str, Any] | None:
    return harness.admin_rest(kube).get_or_none(CANARY.path(namespace, harness.SERVICE))


def _envoy_filter(kube: KubeCluster, namespace: str) -> dict[str, Any] | None:
    return harness.admin_rest(kube).get_or_none(ENVOY_FILTER.path(namespace, FILTER))


def _delete_and_wait_gone(kube: KubeCluster, namespace: str) -> float:
    """`kubectl delete` as a user types it (without waiting), then polls until the Canary is
    gone from the API server; the seconds it took."""
    began = time.monotonic()
    kube.kubectl("delete", "canary", harness.SERVICE, "-n", namespace, "--wait=false", check=True)
    deleting = _canary_body(kube, namespace)
    # Held by the finalizer: the deletion is under way, the object still there (or, on a
    # very quick controller, already gone).
    if deleting is not None:
        assert deleting["metadata"].get("deletionTimestamp"), deleting["metadata"]
    harness.wait_for(
        "the Canary to be gone",
        lambda: None if _canary_body(kube, namespace) is None else "still there",
        timeout=30,
    )
    return time.monotonic() - began


def _at_step(kube: KubeCluster, namespace: str, weight: int, controller: Any) -> dict[str, Any]:
    return harness.follow(
        kube,
        namespace,
        lambda c: (
            c.get("phase") == "Progressing"
            and c.get("canaryWeight") == weight
            and bool(c.get("stepStartedAt"))
        ),
        timeout=90,
        controller=controller,
    )


def test_a_canary_deleted_mid_rollout_goes_back_to_stable_then_goes(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path, rate=5) as (mesh, feed):
        harness.apply(kube_cluster, harness.objects(kube_namespace, step_seconds=30))
        controller = harness.ControllerProcess(
            kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        try:
            _at_step(kube_cluster, kube_namespace, 10, controller)
            held = _canary_body(kube_cluster, kube_namespace)
            assert held is not None
            assert FINALIZER in (held["metadata"].get("finalizers") or []), held["metadata"]
            before = _count(mesh.client_url)
            took = _delete_and_wait_gone(kube_cluster, kube_namespace)
            after = _count(mesh.client_url)
        finally:
            controller.stop()
        # Traffic really was split before, and really is all on stable after.
        assert before[("v2", 200)] > 0, before
        assert after == Counter({("v1", 200): REQUESTS}), after
        vs = harness.get(
            kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
        )
        assert harness.route_weights(vs) == {"v1": 100, "v2": 0}
        assert feed.canary_weights() == [0, 10, 0], feed.splits
        assert _serves(mesh.admin_url, kube_namespace, 0)
        reasons = [e.get("reason") for e in harness.events(kube_cluster, kube_namespace)]
        assert "Deleting" in reasons, reasons
        assert "Deleted" in reasons, reasons
        print(f"\ndeleted at 10%: back to 100% v1 and gone in {took:.2f}s; before {dict(before)}")


def test_keep_leaves_the_split_clears_the_running_experiments_fault_and_goes(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    vs, dr, canary = harness.objects(kube_namespace, step_seconds=STEP_SECONDS)
    canary["spec"]["onDelete"] = "keep"
    canary["spec"]["chaos"] = [EXPERIMENT]
    # Enough load for the step's checks (minRequests) to pass, so the experiment starts.
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path) as (mesh, _):
        harness.apply(kube_cluster, [vs, dr, canary])
        controller = harness.ControllerProcess(
            kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        try:
            harness.wait_for(
                f"EnvoyFilter {FILTER}",
                lambda: None if _envoy_filter(kube_cluster, kube_namespace) else "absent",
                timeout=STEP_SECONDS + 60,
            )
            written = _envoy_filter(kube_cluster, kube_namespace)
            held = _canary_body(kube_cluster, kube_namespace)
            assert written is not None
            assert held is not None
            running = harness.status(kube_cluster, kube_namespace)
            took = _delete_and_wait_gone(kube_cluster, kube_namespace)
            after = _count(mesh.client_url)
            filter_after = _envoy_filter(kube_cluster, kube_namespace)
        finally:
            controller.stop()
        # The fault named its Canary, uid and all, as the garbage collector needs it.
        [owner] = written["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Canary",
            harness.SERVICE,
            held["metadata"]["uid"],
        ), owner
        assert running["chaos"][0]["phase"] == "Running", running
        assert running["canaryWeight"] == 10, running
        # Cleared by the controller (no garbage collector runs here), and the split kept.
        assert filter_after is None, filter_after
        vs_after = harness.get(
            kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
        )
        assert harness.route_weights(vs_after) == {"v1": 90, "v2": 10}
        assert _serves(mesh.admin_url, kube_namespace, 10)
        # Requests still reach the canary, at about its 10%, all answered.
        assert {status for _, status in after} == {200}, after
        share = after[("v2", 200)] / REQUESTS
        assert 0.02 <= share <= 0.25, after
        print(f"\nkept 90/10, fault cleared and Canary gone in {took:.2f}s; after {dict(after)}")


def test_a_canary_whose_spec_does_not_parse_is_deletable_and_its_owned_fault_goes(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    """A spec the API server's schema admits but the models refuse (one subset for both
    sides): the Canary is Invalid, has no route, and still goes when deleted, taking the fault
    it owns (put here as one a parsing spec would have left) with it."""
    vs, dr, canary = harness.objects(kube_namespace)
    canary["spec"]["canary"] = {"subset": "v1", "labels": {"version": "v1"}}
    harness.apply(kube_cluster, [vs, dr, canary])
    controller = harness.ControllerProcess(
        kube_cluster, tmp_path, "http://127.0.0.1:1", leader_election=False
    ).start()
    try:
        harness.follow(
            kube_cluster,
            kube_namespace,
            lambda c: c.get("phase") == "Invalid",
            timeout=30,
            controller=controller,
        )
        held = _canary_body(kube_cluster, kube_namespace)
        assert held is not None
        assert FINALIZER in (held["metadata"].get("finalizers") or []), held["metadata"]
        ref = RouteRef(
            namespace=kube_namespace,
            virtual_service="demo",
            host=harness.SERVICE,
            route="primary",
            destination_rule=harness.SERVICE,
            owner=Owner(harness.SERVICE, held["metadata"]["uid"]),
        )
        expires = datetime.now(UTC) + timedelta(hours=1)
        left = faults.envoy_filter(
            ref,
            InjectFault("abort-v2", "v2", Fault(abort_status=503, abort_percent=100), expires),
            {"version": "v2"},
            owner=ref.owner,
        )
        harness.admin_rest(kube_cluster).post(ENVOY_FILTER.path(kube_namespace), left)
        took = _delete_and_wait_gone(kube_cluster, kube_namespace)
        remaining = _envoy_filter(kube_cluster, kube_namespace)
    finally:
        controller.stop()
    assert remaining is None, remaining
    deleted = [
        e for e in harness.events(kube_cluster, kube_namespace) if e.get("reason") == "Deleted"
    ]
    assert deleted, harness.events(kube_cluster, kube_namespace)
    assert "does not parse" in deleted[0]["message"], deleted[0]
    print(f"\nan unparsable Canary and its fault gone {took:.2f}s after the delete")
