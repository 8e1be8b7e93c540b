"""Real istiod programs a stock Envoy gateway from the objects in the API server.

Given the backends (v1, v2) as a ServiceEntry with WorkloadEntries, a DestinationRule with
subsets v1/v2 and a VirtualService bound to the test's Gateway, when the VirtualService's
weights are patched in the API server as the controller patches them, then the gateway Envoy's
config_dump shows the new split, real requests through it split accordingly, and no proxy
rejected any of the config (the `gateway` fixture checks that after every test).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

from canary.localmesh import procs
from tests.e2e.istio.conftest import GatewayUnderTest
from tests.istiod import run
from tests.kubeenv import cluster

Json = dict[str, Any]

HOST = "demo.example.test"  # what clients send as Host; the Gateway takes any (`*`)
# Patch-to-Envoy is ~0.1 s here (10 ms debounce); the bound is for a loaded CI machine.
PROPAGATION_TIMEOUT = 30.0


def _objects(namespace: str, backends: list[run.Backend], v1: int, v2: int) -> list[Json]:
    fqdn = f"demo.{namespace}.svc.cluster.local"
    rule = {
        "apiVersion": run.NETWORKING,
        "kind": "DestinationRule",
        "metadata": {"name": "demo", "namespace": namespace},
        "spec": {
            "host": fqdn,
            "trafficPolicy": {"tls": {"mode": "DISABLE"}},
            "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2")],
        },
    }
    service = {
        "apiVersion": run.NETWORKING,
        "kind": "VirtualService",
        "metadata": {"name": "demo", "namespace": namespace},
        "spec": {
            "hosts": [HOST],
            "gateways": ["gw"],
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": fqdn, "subset": "v1"}, "weight": v1},
                        {"destination": {"host": fqdn, "subset": "v2"}, "weight": v2},
                    ],
                }
            ],
        },
    }
    return [*run.service_objects("demo", namespace, backends), rule, service]


def _fqdn(gateway: GatewayUnderTest) -> str:
    return f"demo.{gateway.namespace}.svc.cluster.local"


def test_a_weight_patch_in_the_api_server_reaches_the_gateways_envoy(
    kube_cluster: cluster.KubeCluster,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
) -> None:
    run.create(kube_cluster, *_objects(gateway.namespace, backends, 90, 10))
    fqdn = _fqdn(gateway)
    gateway.proxy.wait_split(fqdn, "primary", {"v1": 90, "v2": 10}, timeout=PROPAGATION_TIMEOUT)

    latencies = []
    for v2 in (25, 50, 100, 0):
        began = time.monotonic()
        run.patch_weights(kube_cluster, gateway.namespace, "demo", 0, [100 - v2, v2])
        gateway.proxy.wait_split(
            fqdn, "primary", {"v1": 100 - v2, "v2": v2}, timeout=PROPAGATION_TIMEOUT
        )
        latencies.append(time.monotonic() - began)
    print(f"VS patch to Envoy config: {', '.join(f'{s * 1000:.0f} ms' for s in latencies)}")

    # A destination of weight 0 is left out: one weighted cluster of 100 remains.
    route = _primary_route(gateway)
    assert route["route"]["weighted_clusters"]["clusters"] == [
        {"name": f"outbound|80|v1|{fqdn}", "weight": 100}
    ]


def test_a_burst_of_requests_through_the_gateway_splits_by_the_weights(
    kube_cluster: cluster.KubeCluster,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
) -> None:
    run.create(kube_cluster, *_objects(gateway.namespace, backends, 100, 0))
    fqdn = _fqdn(gateway)
    gateway.proxy.wait_split(fqdn, "primary", {"v1": 100}, timeout=PROPAGATION_TIMEOUT)
    assert _versions(gateway, 30) == {"v1": 30}

    run.patch_weights(kube_cluster, gateway.namespace, "demo", 0, [75, 25])
    gateway.proxy.wait_split(fqdn, "primary", {"v1": 75, "v2": 25}, timeout=PROPAGATION_TIMEOUT)
    seen = _versions(gateway, 400)
    # 400 draws at 25 %: 100 expected, one standard deviation is 8.7; 55..145 is over ±5 sd.
    assert set(seen) == {"v1", "v2"}, seen
    assert 55 <= seen["v2"] <= 145, seen

    run.patch_weights(kube_cluster, gateway.namespace, "demo", 0, [0, 100])
    gateway.proxy.wait_split(fqdn, "primary", {"v2": 100}, timeout=PROPAGATION_TIMEOUT)
    assert _versions(gateway, 30) == {"v2": 30}


def test_the_gateway_gets_only_upstream_envoy_filters(
    kube_cluster: cluster.KubeCluster,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
) -> None:
    """What a stock Envoy would NACK never reaches it: no istio.* filter anywhere, no TLS to the
    backends (no SDS cluster exists to serve it)."""
    run.create(kube_cluster, *_objects(gateway.namespace, backends, 50, 50))
    fqdn = _fqdn(gateway)
    gateway.proxy.wait_split(fqdn, "primary", {"v1": 50, "v2": 50}, timeout=PROPAGATION_TIMEOUT)
    listeners = json.dumps(gateway.proxy.listeners())
    clusters = gateway.proxy.clusters()
    assert "istio.metadata_exchange" not in listeners
    assert "istio.alpn" not in listeners
    # The Gateway server's bind address and port, as istiod names a gateway listener.
    assert set(gateway.proxy.listeners()) == {f"127.0.0.1_{gateway.port}"}
    for name in (f"outbound|80|v1|{fqdn}", f"outbound|80|v2|{fqdn}"):
        assert "transport_socket" not in clusters[name]
        assert "transport_socket_matches" not in clusters[name]
        assert "metadata_exchange" not in json.dumps(clusters[name])


def _primary_route(gateway: GatewayUnderTest) -> Json:
    for config in gateway.proxy.route_configs().values():
        for host in config.get("virtual_hosts") or []:
            for route in host.get("routes") or []:
                if str(route.get("name", "")).split(".")[0] == "primary":
                    return dict(route)
    raise AssertionError("no route named primary in the gateway's Envoy")


def _versions(gateway: GatewayUnderTest, count: int) -> Counter[str]:
    answers = Counter(gateway.get("/", host=HOST) for _ in range(count))
    assert {status for status, _ in answers} == {200}, answers
    return Counter({json.loads(body)["version"]: n for (_, body), n in answers.items()})


def test_nacks_names_the_config_a_stock_envoy_rejects(
    kube_cluster: cluster.KubeCluster,
    istiod: run.Istiod,
    mesh_namespace: str,
    tmp_path: Path,
) -> None:
    """An EnvoyFilter adding an Istio-only HTTP filter (`istio.stats`, not in a stock Envoy):
    the gateway NACKs its listeners, `nacks()` says so, and a fixed config clears it.

    A gateway of its own, not the `gateway` fixture, whose teardown fails on any NACK."""
    label = {"istio": f"gw-nack-{secrets.token_hex(3)}"}
    port = procs.free_port()
    run.create(
        kube_cluster,
        run.gateway_object("gw", mesh_namespace, selector=label, port=port, hosts=["*"]),
    )
    proxy = run.start_gateway(istiod, tmp_path / "gateway", name=label["istio"], labels=label)
    stats_filter = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": f"stats-{label['istio']}", "namespace": run.SYSTEM_NAMESPACE},
        "spec": {
            "workloadSelector": {"labels": label},
            "configPatches": [
                {
                    "applyTo": "HTTP_FILTER",
                    "match": {
                        "context": "GATEWAY",
                        "listener": {
                            "filterChain": {
                                "filter": {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "subFilter": {"name": "envoy.filters.http.router"},
                                }
                            }
                        },
                    },
                    "patch": {
                        "operation": "INSERT_BEFORE",
                        "value": {
                            "name": "istio.stats",
                            "typed_config": {
                                "@type": "type.googleapis.com/stats.PluginConfig",
                            },
                        },
                    },
                }
            ],
        },
    }
    path = (
        f"{run.collection('EnvoyFilter', run.SYSTEM_NAMESPACE)}/{stats_filter['metadata']['name']}"
    )
    try:
        run.create(kube_cluster, stats_filter)
        listener_type = "type.googleapis.com/envoy.config.listener.v3.Listener"

        def rejected() -> str | None:
            found = istiod.nacks().get(proxy.xds_id, {})
            return None if listener_type in found else f"NACKs so far: {found}"

        run.wait("the gateway to NACK its listeners", rejected, timeout=PROPAGATION_TIMEOUT)
        message = istiod.nacks()[proxy.xds_id][listener_type]
        print(f"NACK: {message}")
        assert "stats" in message
        assert any("lds.update_rejected" in name for name in proxy.rejected_updates())

        kube_cluster.request("DELETE", path)

        def cleared() -> str | None:
            found = istiod.nacks().get(proxy.xds_id)
            return None if not found and istiod.synced(proxy.xds_id) else f"still {found}"

        run.wait("the NACK to clear", cleared, timeout=PROPAGATION_TIMEOUT)
    finally:
        kube_cluster.request("DELETE", path)
        proxy.stop()
