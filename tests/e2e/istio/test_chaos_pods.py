"""A fault for some of the canary's pods, through real Istio: it lands on those pods' sidecars.

Given the canary subset v2 with two pods in the API server (`demo-v2-a`, `demo-v2-b`, Pending
for good: no kubelet runs), a stable pod `demo-v1-a`, and one sidecar Envoy per pod whose node
metadata NAME is the pod's name, as pilot-agent sends it, each with an inbound listener of its
own in front of its version's app: when KubeRouter (as the controller's ServiceAccount, so with
the ClusterRole's rights alone) injects an abort for `pods: 1`, then it picks `demo-v2-a`, the
first by name, istiod installs the fault filter on that sidecar alone (not on `demo-v2-b`'s,
the stable one's or the gateway's, in Envoy's config_dump and in what istiod would send them),
requests to `demo-v2-a` fail while `demo-v2-b` answers, and nothing is NACKed. `pods: 2` reaches
both v2 sidecars and never the stable one; clearing takes the fault off both.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.faults import FILTER_NAME
from canary.adapters.kube.rest import DESTINATION_RULE, ENVOY_FILTER, Rest, connect
from canary.adapters.kube.router import KubeRouter
from canary.engine.actions import Fault, InjectFault
from canary.localmesh import procs
from canary.ports import RouteRef, SubsetRef
from tests.e2e.istio import sidecars
from tests.e2e.istio.conftest import GatewayUnderTest, assert_no_nacks
from tests.istiod import run
from tests.kubeenv import cluster

Json = dict[str, Any]

# What tells one pod's proxy from its siblings' in a Sidecar's workloadSelector; StatefulSet
# pods carry it, and istiod takes a proxy's labels from its pod, so the pods carry it here too.
POD_LABEL = "statefulset.kubernetes.io/pod-name"
PODS = {"demo-v1-a": "v1", "demo-v2-a": "v2", "demo-v2-b": "v2"}
ABORT = {"abort": {"http_status": 503, "percentage": {"numerator": 100, "denominator": "HUNDRED"}}}


@dataclass
class Pod:
    """A pod's sidecar Envoy and the inbound port it listens on in front of its version's app."""

    name: str
    proxy: run.Proxy
    inbound_port: int

    def get(self) -> tuple[int, str]:
        return run.get(self.inbound_port, host=sidecars.SERVICE)


def _pod(namespace: str, name: str, version: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": sidecars.SERVICE, "version": version, POD_LABEL: name},
        },
        "spec": {"containers": [{"name": "app", "image": "demo:test"}]},
    }


def _sidecar(namespace: str, pod: str, inbound_port: int, app_port: int) -> Json:
    """One pod's inbound listener (as in sidecars.py, per pod rather than per version, so two
    proxies of one version bind ports of their own) and no outbound one."""
    return {
        "apiVersion": run.NETWORKING,
        "kind": "Sidecar",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {
            "workloadSelector": {"labels": {POD_LABEL: pod}},
            "ingress": [
                {
                    "port": {"number": inbound_port, "protocol": "HTTP", "name": "http"},
                    "bind": "127.0.0.1",
                    "defaultEndpoint": f"127.0.0.1:{app_port}",
                }
            ],
            "egress": [{"hosts": ["./nothing.invalid"]}],
        },
    }


def _wait_istiod_holds_sidecars(istiod: run.Istiod, namespace: str) -> None:
    """Before a proxy connects, or its first push has the default (every service) egress."""

    def check() -> str | None:
        metas = [
            c.get("metadata") or {}
            for c in istiod.debug("/debug/configz") or []
            if c.get("kind") == "Sidecar"
        ]
        held = {str(meta.get("name")) for meta in metas if meta.get("namespace") == namespace}
        missing = set(PODS) - held
        return f"missing {sorted(missing)}" if missing else None

    run.wait("istiod to hold the Sidecars", check, timeout=sidecars.PROPAGATION_TIMEOUT)


@contextlib.contextmanager
def pods(
    kube: cluster.KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    namespace: str,
    workdir: Path,
) -> Iterator[dict[str, Pod]]:
    """The Pods, their Sidecars and their proxies, LIVE; on the way out without an error, a
    NACK from any of them fails the test."""
    apps = {backend.version: backend.port for backend in backends}
    inbound = {name: procs.free_port() for name in PODS}
    status, body = kube.request(
        "POST",
        sidecars.PEER_AUTHENTICATION.format(namespace),
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"mtls": {"mode": "DISABLE"}},
        },
    )
    assert status == 201, body
    started: dict[str, Pod] = {}
    try:
        for name, version in PODS.items():
            status, body = kube.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", _pod(namespace, name, version)
            )
            assert status == 201, body
        run.create(
            kube,
            sidecars.destination_rule(namespace),
            *(_sidecar(namespace, n, inbound[n], apps[v]) for n, v in PODS.items()),
        )
        _wait_istiod_holds_sidecars(istiod, namespace)
        for index, (name, version) in enumerate(PODS.items()):
            proxy = run.start_sidecar(
                istiod,
                workdir / name,
                # The node id's name is the pod's, and so is the NAME run.bootstrap derives.
                name=name,
                namespace=namespace,
                labels={"app": sidecars.SERVICE, "version": version, POD_LABEL: name},
                ip=f"127.0.0.{41 + index}",
            )
            started[name] = Pod(name, proxy, inbound[name])
        for each in started.values():
            procs.wait_http(
                f"http://127.0.0.1:{each.inbound_port}/", timeout=sidecars.PROPAGATION_TIMEOUT
            )
        yield started
        for each in started.values():
            assert_no_nacks(istiod, each.proxy)
    finally:
        for each in started.values():
            each.proxy.stop()
        # Unscheduled pods go at once; the Istio objects go with the mesh_namespace fixture.
        kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods")
        kube.request("DELETE", sidecars.PEER_AUTHENTICATION.format(namespace))


def _istiod_sends_filter(istiod: run.Istiod, proxy: run.Proxy) -> bool:
    """Whether the config istiod generates for the proxy now has our fault filter."""
    dump = istiod.debug(f"/debug/config_dump?proxyID={proxy.xds_id}")
    return FILTER_NAME in json.dumps(dump)


def _wait_synced(istiod: run.Istiod, *proxies: run.Proxy) -> None:
    def check() -> str | None:
        behind = [p.xds_id for p in proxies if not istiod.synced(p.xds_id)]
        return f"not synced: {behind}" if behind else None

    run.wait("the proxies to ACK istiod's last push", check, timeout=sidecars.PROPAGATION_TIMEOUT)


def _inject(router: KubeRouter, ref: RouteRef, count: int) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=2)
    fault = Fault(abort_status=503, abort_percent=100)
    router.inject(ref, InjectFault("one-bad-pod", "v2", fault, expires, pods=count))


def test_a_fault_for_one_pod_reaches_the_first_pods_sidecar_alone(
    kube_cluster: cluster.KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
    tmp_path: Path,
) -> None:
    namespace = gateway.namespace
    # The controller's own identity: listing the pods is one of the ClusterRole's grants.
    rest = Rest(connect(str(kube_cluster.controller_kubeconfig)))
    cache = ClusterCache(rest, kinds=(DESTINATION_RULE, ENVOY_FILTER))
    with pods(kube_cluster, istiod, backends, namespace, tmp_path) as started:
        first, second, stable = started["demo-v2-a"], started["demo-v2-b"], started["demo-v1-a"]
        assert first.get() == second.get() == (200, '{"version": "v2"}')
        cache.start()
        try:
            assert cache.wait_synced(30.0), cache.unsynced()
            run.wait(
                "the DestinationRule in the cache",
                lambda: None if cache.of(DESTINATION_RULE).get(namespace, "demo") else "not yet",
                timeout=10.0,
            )
            router = KubeRouter(rest, cache)
            ref = RouteRef(
                namespace=namespace,
                virtual_service="demo",
                host=sidecars.fqdn_of(namespace),
                route=None,
                destination_rule="demo",
                subsets=(SubsetRef("v1"), SubsetRef("v2")),
            )

            began = time.monotonic()
            _inject(router, ref, 1)
            sidecars.wait_fault(first.proxy, ABORT)
            propagation = time.monotonic() - began
            written = cache.of(ENVOY_FILTER).get(namespace, "canary-fault-demo")
            assert written is not None
            assert written["metadata"]["annotations"]["canary.dev/pods"] == "demo-v2-a"
            assert written["spec"]["workloadSelector"] == {
                "labels": {"app": "demo", "version": "v2"}
            }
            # istiod has the EnvoyFilter (the first pod's sidecar got it): what it would send
            # every other proxy now, and what they hold once they ACKed, has no fault filter.
            assert _istiod_sends_filter(istiod, first.proxy)
            others = {
                "second v2 pod": second.proxy,
                "stable pod": stable.proxy,
                "gateway": gateway.proxy,
            }
            _wait_synced(istiod, *others.values())
            assert {who for who, p in others.items() if _istiod_sends_filter(istiod, p)} == set()
            assert {
                who for who, p in others.items() if FILTER_NAME in json.dumps(p.config_dump())
            } == set()
            assert first.get() == (503, "fault filter abort")
            assert second.get() == (200, '{"version": "v2"}')
            assert stable.get() == (200, '{"version": "v1"}')

            # Two pods: both v2 sidecars, never the stable one.
            _inject(router, ref, 2)
            sidecars.wait_fault(second.proxy, ABORT)
            sidecars.wait_fault(first.proxy, ABORT)
            _wait_synced(istiod, stable.proxy)
            assert not _istiod_sends_filter(istiod, stable.proxy)
            assert sidecars.fault_filters(stable.proxy) == []
            assert second.get() == (503, "fault filter abort")

            router.clear_faults(ref)
            sidecars.wait_fault(first.proxy, None)
            sidecars.wait_fault(second.proxy, None)
            assert first.get() == second.get() == (200, '{"version": "v2"}')
            print(f"fault for one pod written to served by its sidecar: {propagation:.3f} s")
        finally:
            cache.stop()
