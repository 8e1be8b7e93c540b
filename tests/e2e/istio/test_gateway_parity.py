"""The local mesh's gateway translation and real istiod, given the same Gateway + VirtualService,
program a gateway Envoy alike.

As `test_parity.py` does for the sidecar: the same objects go to the local gateway publisher
(`canary.localmesh.gateway`), which feeds one Envoy through files, and into the API server,
from which istiod feeds a stock gateway Envoy (`router~`). The Gateway has one HTTP server on
port G: istiod's Envoy listens on 127.0.0.1:G (the server's `bind`), the local one on another
free port for server port G (the local gateway binds loopback itself and refuses `bind`), so
both name their virtual hosts `<host>:G`. istiod names the route configuration
`http.G.127.0.0.1` for the bind, the local side `http.G`; the virtual hosts are compared, not
that name.

Compared per case, from each Envoy's config_dump: the virtual host serving the external host
(its name, domains, every route as in `test_parity.py`), or istiod's 404 `blackhole:G` when the
Gateway serves none of the VirtualService's hosts; the route configuration's own flags; the
demo service's clusters. Then requests with the external Host header through both.

HTTPS is not compared: istiod serves a `credentialName` over SDS, which a stock Envoy without
istio-agent has no `sds-grpc` cluster for.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from canary.localmesh import envoy, gateway, procs
from canary.localmesh.certs import LocalCA
from canary.localmesh.pilot import Workload
from canary.localmesh.pilot.gateway import Listen
from tests.e2e.istio.conftest import assert_no_nacks
from tests.e2e.istio.test_parity import (
    CLUSTER_FIELDS,
    KNOWN_DIFFERENCES,
    ROUTE_CONFIG_FIELDS,
    SETTLE_TIMEOUT,
    Differences,
    _clusters,
    _diff,
    _dump,
    _strip,
    _without_panic_threshold,
)
from tests.istiod import run
from tests.kubeenv import cluster

Json = dict[str, Any]
SHOP = "shop.example.test"
LABELS = {"istio": "ingressgateway"}


@dataclass(frozen=True)
class GatewayCase:
    id: str
    server_hosts: list[str]
    vs_hosts: list[str]
    weights: tuple[int, int]
    # The versions (or status) requests for SHOP may get.
    expected: set[str]


CASES = [
    GatewayCase("weights-90-10", ["*"], [SHOP], (90, 10), {"v1", "v2"}),
    GatewayCase("wildcard-server-host", ["*.example.test"], [SHOP], (0, 100), {"v2"}),
    GatewayCase("wildcard-vs-host", [SHOP], ["*.example.test"], (100, 0), {"v1"}),
    GatewayCase("namespace-scoped-server-host", ["./" + SHOP], [SHOP], (100, 0), {"v1"}),
    GatewayCase("host-not-served", ["other.example.test"], [SHOP], (100, 0), {"404"}),
]


@dataclass
class Sides:
    namespace: str
    service_port: int
    server_port: int  # the Gateway server's port number; istiod's Envoy listens on it
    local: gateway.GatewayPublisher
    local_envoy: envoy.EnvoyHandle
    local_listener: int
    istio: run.Proxy
    kube: cluster.KubeCluster
    istiod: run.Istiod
    label: dict[str, str]  # istiod's gateway Envoy's own, which its Gateway selects

    def cluster(self, subset: str = "") -> str:
        return f"outbound|{self.service_port}|{subset}|demo.{self.namespace}.svc.cluster.local"


@pytest.fixture(scope="module")
def sides(
    kube_cluster: cluster.KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Sides]:
    namespace = f"gw-parity-{secrets.token_hex(3)}"
    kube_cluster.create_namespace(namespace)
    service_port, server_port, listener = (procs.free_port() for _ in range(3))
    workdir = tmp_path_factory.mktemp("gateway-parity")
    run.create(kube_cluster, *run.service_objects("demo", namespace, backends, port=service_port))
    label = {"istio": f"gw-{secrets.token_hex(4)}"}
    local = gateway.GatewayPublisher(
        xds_dir=workdir / "local-xds",
        spec=gateway.GatewaySpec(labels=LABELS, http=server_port),
        listen={server_port: Listen(listener, https=False)},
        workloads=[
            Workload(
                name=f"demo-{b.version}-{i}",
                namespace=namespace,
                host="demo",
                labels={"app": "demo", "version": b.version},
                address=b.host,
                port=b.port,
            )
            for i, b in enumerate(backends)
        ],
        ca=LocalCA.create(workdir / "ca"),
        service_port=service_port,
    )
    admin_port = procs.free_port()
    with procs.Supervisor(workdir / "local") as supervisor:
        local_envoy = envoy.start_envoy(
            supervisor,
            gateway.bootstrap(admin_port=admin_port, publisher=local),
            name="local-gateway",
            admin_port=admin_port,
            workdir=workdir / "local",
        )
        istio = run.start_gateway(istiod, workdir / "istio", name=label["istio"], labels=label)
        try:
            yield Sides(
                namespace=namespace,
                service_port=service_port,
                server_port=server_port,
                local=local,
                local_envoy=local_envoy,
                local_listener=listener,
                istio=istio,
                kube=kube_cluster,
                istiod=istiod,
                label=label,
            )
        finally:
            istio.stop()
            run.delete_all(kube_cluster, namespace)
            kube_cluster.clear_namespace(namespace)


def _objects(case: GatewayCase, sides: Sides, name: str) -> tuple[Json, Json, Json]:
    ingress = run.gateway_object(
        "ingress",
        sides.namespace,
        selector=sides.label,
        port=sides.server_port,
        hosts=case.server_hosts,
    )
    service = {
        "apiVersion": run.NETWORKING,
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": sides.namespace},
        "spec": {
            "hosts": case.vs_hosts,
            "gateways": ["ingress"],
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": "demo", "subset": s}, "weight": w}
                        for s, w in zip(("v1", "v2"), case.weights, strict=True)
                    ],
                }
            ],
        },
    }
    rule = {
        "apiVersion": run.NETWORKING,
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": sides.namespace},
        "spec": {
            "host": "demo",
            "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2")],
        },
    }
    return ingress, service, rule


def _local_gateway(ingress: Json) -> Json:
    """The same Gateway for the local side: selecting the local gateway, without `bind`."""
    local = json.loads(json.dumps(ingress))
    local["spec"]["selector"] = dict(LABELS)
    for server in local["spec"]["servers"]:
        server.pop("bind", None)
    return local


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_istiod_and_the_local_gateway_program_envoy_alike(case: GatewayCase, sides: Sides) -> None:
    name = f"shop-{case.id}"[:60]
    ingress, service, rule = _objects(case, sides, name)
    run.delete_all(
        sides.kube, sides.namespace, kinds=("VirtualService", "DestinationRule", "Gateway")
    )
    run.create(sides.kube, ingress, service, rule)
    version = sides.local.push([_local_gateway(ingress)], [service], [rule])
    served = case.expected != {"404"}

    def local_applied() -> str | None:
        at = sides.local.applied_version(sides.local_envoy.admin_url)
        return None if at is not None and at >= version else f"at version {at}"

    run.wait("the local gateway to apply the case", local_applied, timeout=SETTLE_TIMEOUT)
    config = f"/namespaces/{sides.namespace}/virtual-service/{name}"

    def istio_arrived() -> str | None:
        try:
            host = _virtual_host(sides.istio.admin_url, SHOP)
        except (OSError, ValueError, KeyError) as exc:
            return str(exc)
        if served and config not in json.dumps(host):
            return f"the virtual host is not from {config} yet"
        if not served and host.get("name") != f"blackhole:{sides.server_port}":
            return "no blackhole yet"
        return None

    run.wait("istiod's gateway to take the case", istio_arrived, timeout=SETTLE_TIMEOUT)
    differences = _differences(sides, served=served)
    for side, port in (("local", sides.local_listener), ("istiod", sides.server_port)):
        seen = _versions(port)
        if not set(seen) <= case.expected:
            differences.append(f"{side}'s gateway answered {dict(seen)}, expected {case.expected}")
    assert_no_nacks(sides.istiod, sides.istio)
    if differences:
        raise Differences("\n".join(differences))


def _differences(sides: Sides, *, served: bool) -> list[str]:
    differences = []
    local_config = _route_config(sides.local_envoy.admin_url)
    istio_config = _route_config(sides.istio.admin_url)
    local_host = _virtual_host(sides.local_envoy.admin_url, SHOP)
    istio_host = _virtual_host(sides.istio.admin_url, SHOP)
    for key in ("name", "domains", "routes", "include_request_attempt_count"):
        mine = _strip(local_host.get(key), KNOWN_DIFFERENCES)
        theirs = _strip(istio_host.get(key), KNOWN_DIFFERENCES)
        if mine != theirs:
            differences.append(_diff(f"virtual host {key}", mine, theirs))
    for key in ROUTE_CONFIG_FIELDS:
        if local_config.get(key) != istio_config.get(key):
            differences.append(
                _diff(f"route config {key}", local_config.get(key), istio_config.get(key))
            )
    if not served:
        return differences
    local_clusters, istio_clusters = (
        _clusters(sides.local_envoy.admin_url),
        _clusters(sides.istio.admin_url),
    )
    for subset in ("", "v1", "v2"):
        mine, theirs = (
            local_clusters.get(sides.cluster(subset)),
            istio_clusters.get(sides.cluster(subset)),
        )
        if mine is None or theirs is None:
            differences.append(
                f"cluster {sides.cluster(subset)}: the local gateway "
                f"{'has' if mine else 'lacks'} it, istiod's {'has' if theirs else 'lacks'} it"
            )
            continue
        theirs = _without_panic_threshold(theirs, mine)
        for key in CLUSTER_FIELDS:
            a, b = (
                _strip(mine.get(key), KNOWN_DIFFERENCES),
                _strip(theirs.get(key), KNOWN_DIFFERENCES),
            )
            if a != b:
                differences.append(_diff(f"cluster {sides.cluster(subset)} {key}", a, b))
    return differences


def _route_config(admin_url: str) -> Json:
    """The one HTTP route configuration of a gateway Envoy (`http.<port>[.<bind>]`)."""
    dump = _dump(admin_url, "dynamic_route_configs")
    found = [
        config["route_config"]
        for config in dump.get("configs") or []
        if str((config.get("route_config") or {}).get("name", "")).startswith("http.")
    ]
    if len(found) != 1:
        raise KeyError(f"{len(found)} http route configurations at {admin_url}")
    return dict(found[0])


def _virtual_host(admin_url: str, host: str) -> Json:
    """The virtual host Envoy picks for `host`: the exact domain, else a wildcard, else `*`."""
    hosts = _route_config(admin_url).get("virtual_hosts") or []
    for wanted in (host, "*." + host.split(".", 1)[1], "*"):
        for found in hosts:
            if wanted in found.get("domains", []):
                return dict(found)
    raise KeyError(f"no virtual host for {host} at {admin_url}")


def _versions(port: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(20):
        status, body = run.get(port, "/", host=SHOP)
        try:
            seen[json.loads(body)["version"] if status == 200 else str(status)] += 1
        except (ValueError, KeyError, TypeError):
            seen[f"{status} {body[:40]}"] += 1
    return seen
