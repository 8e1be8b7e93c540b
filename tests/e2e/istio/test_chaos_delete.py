"""A Canary deleted during a 503 experiment: its pods answer 200 within one check interval.

Given the service of test_chaos.py (each version behind a sidecar Envoy istiod programs, a
gateway routing by weight) and a Canary whose one step ends with a 100% abort experiment, when
`canary run` has started the experiment (the canary's sidecar answers 503) and the Canary is
deleted, then, with no controller restart, the controller's finalizer holds the Canary while
its deletion is dealt with: the EnvoyFilter goes (the test API server runs no garbage
collector, so that is the controller's doing), istiod takes the fault filter off the sidecar,
and every request to the canary answers 200 again within one check interval of the delete;
the route goes back to 100% stable (`onDelete: revert`), requests through the gateway all
reach v1, and the Canary is gone.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.adapters.envoy_admin import EnvoyPropagation
from tests.e2e.istio import sidecars
from tests.e2e.istio.conftest import GatewayUnderTest, assert_no_nacks
from tests.e2e.kube import harness
from tests.istiod import run
from tests.kubeenv.cluster import KubeCluster

Json = dict[str, Any]

INTERVAL = 30
CHECK_INTERVAL = 3
# Long enough that the delete lands while the fault is in force.
DURATION = 25
EXPERIMENT = "abort-v2"
ROUTE = "primary"
# After the first 200, this many requests in a row to the canary's sidecar must all be 200.
AFTER = 100


def _objects(namespace: str) -> list[Json]:
    return sidecars.gateway_routing(namespace, ROUTE)


def _canary(namespace: str) -> Json:
    return sidecars.abort_canary(
        namespace,
        route=ROUTE,
        experiment=EXPERIMENT,
        interval=f"{INTERVAL}s",
        check_interval=f"{CHECK_INTERVAL}s",
        duration=f"{DURATION}s",
    )


def _envoy_filter(kube: KubeCluster, namespace: str) -> Json | None:
    return sidecars.fault_filter(kube, namespace)


def _canary_object(kube: KubeCluster, namespace: str) -> Json | None:
    status, body = kube.request(
        "GET", f"/apis/canary.dev/v1alpha1/namespaces/{namespace}/canaries/{sidecars.SERVICE}"
    )
    if status == 404:
        return None
    assert status == 200, body
    found: Json = body
    return found


@dataclass
class Recovery:
    """Seconds from the delete until each trace of the fault was first seen gone, and every
    answer the canary's sidecar gave meanwhile."""

    envoy_filter: float | None = None
    sidecar_config: float | None = None
    first_200: float | None = None
    canary_gone: float | None = None
    answers: Counter[int] | None = None

    def complete(self) -> bool:
        return None not in (self.envoy_filter, self.sidecar_config, self.first_200)


def _watch(
    kube: KubeCluster,
    namespace: str,
    canary: sidecars.Version,
    deleted: threading.Event,
    began: list[float],
    *,
    timeout: float,
) -> Recovery:
    """Requests to the canary's sidecar back to back from the delete on; the first 200 and
    everything after it are counted."""
    seen = Recovery(answers=Counter())
    assert deleted.wait(30)
    start = began[0]
    deadline = start + timeout
    while time.monotonic() < deadline:
        now = time.monotonic() - start
        if seen.envoy_filter is None and _envoy_filter(kube, namespace) is None:
            seen.envoy_filter = now
        if seen.sidecar_config is None and not sidecars.fault_filters(canary.proxy):
            seen.sidecar_config = now
        if seen.canary_gone is None and _canary_object(kube, namespace) is None:
            seen.canary_gone = now
        status = canary.get()[0]
        if seen.first_200 is None and status == 200:
            seen.first_200 = time.monotonic() - start
        if seen.first_200 is not None:
            assert seen.answers is not None
            seen.answers[status] += 1
            if sum(seen.answers.values()) >= AFTER and seen.canary_gone is not None:
                break
    return seen


def test_a_canary_deleted_during_a_503_experiment_answers_200_within_one_check_interval(
    kube_cluster: KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
    tmp_path: Path,
) -> None:
    namespace = gateway.namespace
    fqdn = sidecars.fqdn_of(namespace)
    with sidecars.versions(
        kube_cluster, istiod, backends, namespace, tmp_path / "mesh", objects=_objects(namespace)
    ) as versions:
        canary, stable = versions["v2"], versions["v1"]
        assert canary.get()[:2] == (200, '{"version": "v2"}')
        harness.apply(kube_cluster, [_canary(namespace)])
        controller = harness.ControllerProcess(
            kube_cluster,
            tmp_path / "controller",
            sidecars.NO_PROMETHEUS,
            envoy_admin=gateway.proxy.admin_url,
            lease_namespace=namespace,
            preflight=False,
        ).start()
        try:
            harness.wait_for(
                f"EnvoyFilter {sidecars.FAULT_FILTER}",
                lambda: None if _envoy_filter(kube_cluster, namespace) else "absent",
                timeout=INTERVAL + 30,
            )
            sidecars.wait_fault(canary.proxy, {"abort": sidecars.ABORT_ALL})
            assert canary.get()[:2] == (503, "fault filter abort")
            written = _envoy_filter(kube_cluster, namespace)
            held = _canary_object(kube_cluster, namespace)
            assert written is not None
            assert held is not None
            running = held["status"]["chaos"][0]
            assert (running["name"], running["phase"]) == (EXPERIMENT, "Running"), running
            # The gateway splits 50/50 now.
            assert held["status"]["canaryWeight"] == 50

            deleted = threading.Event()
            began: list[float] = []
            with ThreadPoolExecutor(max_workers=1) as pool:
                watching = pool.submit(
                    _watch, kube_cluster, namespace, canary, deleted, began, timeout=60
                )
                began.append(time.monotonic())
                kube_cluster.kubectl(
                    "delete", "canary", sidecars.SERVICE, "-n", namespace, "--wait=false",
                    check=True,
                )  # fmt: skip
                deleted.set()
                seen = watching.result(timeout=90)
            through_gateway = Counter(gateway.get("/", host=fqdn) for _ in range(AFTER))
        finally:
            controller.stop()

        # The fault's owner was the Canary, by uid.
        [owner] = written["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("Canary", held["metadata"]["uid"]), owner
        assert seen.complete(), (seen, controller.log_tail())
        assert seen.first_200 is not None
        assert seen.first_200 <= CHECK_INTERVAL, (seen, controller.log_tail())
        # Once the canary answered, it kept answering: every request after the first 200.
        assert seen.answers == Counter({200: sum((seen.answers or {}).values())}), seen
        assert sum((seen.answers or {}).values()) >= AFTER, seen
        # The Canary is gone (its finalizer came off), the route is all stable again.
        assert seen.canary_gone is not None, (seen, controller.log_tail())
        assert _canary_object(kube_cluster, namespace) is None
        assert _envoy_filter(kube_cluster, namespace) is None
        assert through_gateway == Counter({(200, '{"version": "v1"}'): AFTER}), through_gateway
        propagation = EnvoyPropagation([gateway.proxy.admin_url])
        assert propagation.serves(namespace, fqdn, ROUTE, {"v1": 100})
        assert stable.get()[:2] == (200, '{"version": "v1"}')
        for proxy in (canary.proxy, stable.proxy, gateway.proxy):
            assert_no_nacks(istiod, proxy)

    print(
        f"\nfrom the delete: EnvoyFilter gone {seen.envoy_filter:.3f} s, sidecar config clean "
        f"{seen.sidecar_config:.3f} s, canary answers 200 {seen.first_200:.3f} s, Canary gone "
        f"{seen.canary_gone:.3f} s (check interval {CHECK_INTERVAL} s); then "
        f"{dict(seen.answers or {})} from the canary, {dict(through_gateway)} via the gateway"
    )
