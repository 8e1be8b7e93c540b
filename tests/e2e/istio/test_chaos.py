"""Faults through real Istio: KubeRouter's EnvoyFilter reaches the canary's own sidecar alone.

Given a service with two versions, each behind a sidecar Envoy istiod programs (interception
NONE, an inbound listener from a `Sidecar` resource's `ingress`, forwarding to the version's app),
and a gateway routing to them by subset, when KubeRouter injects a fault for the canary subset,
then istiod turns the EnvoyFilter into an HTTP fault filter on the canary's inbound listener and
on no other proxy's, requests to the canary fail (directly and through the gateway) while the
stable version answers, and nothing is NACKed; clearing takes it away again. The startup sweep
removes an expired fault and keeps a live one.
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
from canary.engine.observation import ActiveFault
from canary.localmesh import procs
from canary.ports import RouteRef, SubsetRef
from tests.e2e.istio.conftest import GatewayUnderTest, assert_no_nacks
from tests.istiod import run
from tests.kubeenv import cluster

Json = dict[str, Any]

# Write-to-Envoy is ~0.1 s here (10 ms debounce); the bound is for a loaded CI machine.
PROPAGATION_TIMEOUT = 30.0
DELAY_SECONDS = 0.6
PEER_AUTHENTICATION = "/apis/security.istio.io/v1/namespaces/{}/peerauthentications"


@dataclass
class Version:
    """One version: its sidecar Envoy and the inbound port it listens on in front of the app."""

    name: str
    proxy: run.Proxy
    inbound_port: int

    def get(self) -> tuple[int, str, float]:
        began = time.monotonic()
        status, body = run.get(self.inbound_port, host="demo")
        return status, body, time.monotonic() - began


@dataclass
class Mesh:
    namespace: str
    fqdn: str
    versions: dict[str, Version]
    gateway: GatewayUnderTest
    router: KubeRouter
    ref: RouteRef


def _sidecar(namespace: str, version: str, inbound_port: int, app_port: int) -> Json:
    """The Sidecar that gives a version's proxy its inbound listener (interception NONE binds
    only what `ingress` names) and no outbound one (egress to a host that does not exist)."""
    return {
        "apiVersion": run.NETWORKING,
        "kind": "Sidecar",
        "metadata": {"name": f"demo-{version}", "namespace": namespace},
        "spec": {
            "workloadSelector": {"labels": {"app": "demo", "version": version}},
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


def _objects(namespace: str, fqdn: str, inbound: dict[str, int]) -> list[Json]:
    """The service's endpoints are the sidecars' inbound listeners, as a pod's IP would be."""
    rule = {
        "apiVersion": run.NETWORKING,
        "kind": "DestinationRule",
        "metadata": {"name": "demo", "namespace": namespace},
        "spec": {
            "host": fqdn,
            "trafficPolicy": {"tls": {"mode": "DISABLE"}},
            "subsets": [{"name": v, "labels": {"app": "demo", "version": v}} for v in ("v1", "v2")],
        },
    }
    service = {
        "apiVersion": run.NETWORKING,
        "kind": "VirtualService",
        "metadata": {"name": "demo", "namespace": namespace},
        "spec": {
            "hosts": [fqdn],
            "gateways": ["gw"],
            "http": [
                {
                    "name": "canary",
                    "match": [{"headers": {"x-subset": {"exact": "v2"}}}],
                    "route": [{"destination": {"host": fqdn, "subset": "v2"}}],
                },
                {"name": "stable", "route": [{"destination": {"host": fqdn, "subset": "v1"}}]},
            ],
        },
    }
    backends = [run.Backend(version, "127.0.0.1", port) for version, port in inbound.items()]
    return [*run.service_objects("demo", namespace, backends), rule, service]


def _wait_istiod_has(istiod: run.Istiod, kind: str, namespace: str, names: set[str]) -> None:
    """istiod holds these objects in its config store, so a proxy connecting now gets them."""

    def check() -> str | None:
        held = {
            str((c.get("metadata") or {}).get("name"))
            for c in istiod.debug("/debug/configz") or []
            if c.get("kind") == kind and (c.get("metadata") or {}).get("namespace") == namespace
        }
        missing = names - held
        return f"missing {sorted(missing)}" if missing else None

    run.wait(f"istiod to hold {kind}s {sorted(names)}", check, timeout=PROPAGATION_TIMEOUT)


@contextlib.contextmanager
def mesh(
    kube: cluster.KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
    workdir: Path,
) -> Iterator[Mesh]:
    namespace = gateway.namespace
    fqdn = f"demo.{namespace}.svc.cluster.local"
    apps = {backend.version: backend.port for backend in backends}
    inbound = {version: procs.free_port() for version in apps}
    # Without mTLS: a stock Envoy has no SDS for the inbound listener's PERMISSIVE TLS chain.
    status, body = kube.request(
        "POST",
        PEER_AUTHENTICATION.format(namespace),
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"mtls": {"mode": "DISABLE"}},
        },
    )
    assert status == 201, body
    sidecars = [_sidecar(namespace, v, inbound[v], apps[v]) for v in apps]
    run.create(kube, *sidecars, *_objects(namespace, fqdn, inbound))
    _wait_istiod_has(istiod, "Sidecar", namespace, {s["metadata"]["name"] for s in sidecars})
    rest = Rest(connect(str(kube.admin_kubeconfig)))
    cache = ClusterCache(rest, kinds=(DESTINATION_RULE, ENVOY_FILTER))
    versions: dict[str, Version] = {}
    try:
        for index, version in enumerate(sorted(apps)):
            proxy = run.start_sidecar(
                istiod,
                workdir / version,
                name=f"demo-{version}",
                namespace=namespace,
                labels={"app": "demo", "version": version},
                ip=f"127.0.0.{21 + index}",
            )
            versions[version] = Version(version, proxy, inbound[version])
        for started in versions.values():
            procs.wait_http(
                f"http://127.0.0.1:{started.inbound_port}/", timeout=PROPAGATION_TIMEOUT
            )
        cache.start()
        assert cache.wait_synced(30.0), cache.unsynced()
        ref = RouteRef(
            namespace=namespace,
            virtual_service="demo",
            host=fqdn,
            route=None,
            destination_rule="demo",
            subsets=(SubsetRef("v1"), SubsetRef("v2")),
        )
        yield Mesh(namespace, fqdn, versions, gateway, KubeRouter(rest, cache), ref)
        for started in versions.values():
            assert_no_nacks(istiod, started.proxy)
    finally:
        cache.stop()
        for started in versions.values():
            started.proxy.stop()
        kube.request("DELETE", PEER_AUTHENTICATION.format(namespace))


def _fault_filters(proxy: run.Proxy) -> list[Json]:
    """The typed configs of our fault filter in every HTTP connection manager Envoy holds."""
    found = []
    for listener in proxy.listeners().values():
        for chain in listener.get("filter_chains") or []:
            for network_filter in chain.get("filters") or []:
                manager = network_filter.get("typed_config") or {}
                for http_filter in manager.get("http_filters") or []:
                    if http_filter.get("name") == FILTER_NAME:
                        found.append(http_filter.get("typed_config") or {})
    return found


def _wait_fault(proxy: run.Proxy, wanted: Json | None) -> None:
    """Waits until the proxy's one fault filter is configured as `wanted`, or (None) is gone."""
    seen: list[Json] = []

    def check() -> str | None:
        nonlocal seen
        seen = [_as_written(config) for config in _fault_filters(proxy)]
        done = seen == ([] if wanted is None else [wanted])
        return None if done else f"fault filters: {seen}"

    run.wait(f"{proxy.node_id} to serve fault {wanted}", check, timeout=PROPAGATION_TIMEOUT)


def _as_written(config: Json) -> Json:
    """A config_dump's HTTPFault as we wrote it: proto JSON leaves out a default enum value,
    so a percentage per HUNDRED shows no denominator."""
    found = {key: dict(value) for key, value in config.items() if key in ("abort", "delay")}
    for part in found.values():
        part["percentage"] = {"denominator": "HUNDRED", **part.get("percentage", {})}
    return found


def _inject(here: Mesh, fault: Fault, *, seconds: float = 120.0) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    here.router.inject(here.ref, InjectFault("eject", "v2", fault, expires))


def _elsewhere(here: Mesh) -> dict[str, str]:
    """Any trace of our fault filter in the config of the proxies that must not have it."""
    others = {"stable sidecar": here.versions["v1"].proxy, "gateway": here.gateway.proxy}
    return {
        who: FILTER_NAME
        for who, proxy in others.items()
        if FILTER_NAME in json.dumps(proxy.config_dump())
    }


def test_an_injected_fault_fails_the_canary_alone_until_cleared(
    kube_cluster: cluster.KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
    tmp_path: Path,
) -> None:
    with mesh(kube_cluster, istiod, backends, gateway, tmp_path) as here:
        canary, stable = here.versions["v2"], here.versions["v1"]
        assert canary.get()[:2] == (200, '{"version": "v2"}')

        began = time.monotonic()
        _inject(here, Fault(abort_status=503, abort_percent=100))
        abort = {"http_status": 503, "percentage": {"numerator": 100, "denominator": "HUNDRED"}}
        _wait_fault(canary.proxy, {"abort": abort})
        propagation = time.monotonic() - began
        assert _elsewhere(here) == {}
        assert [(f.experiment, f.subset) for f in here.router.faults(here.ref)] == [("eject", "v2")]

        status, body, _ = canary.get()
        assert (status, body) == (503, "fault filter abort")
        assert stable.get()[:2] == (200, '{"version": "v1"}')
        # The callers' side: the gateway gets the canary's 503 from upstream, as a caller's
        # outlier detection would, and the stable route is untouched.
        assert here.gateway.get("/", host=here.fqdn, **{"x-subset": "v2"}) == (
            503,
            "fault filter abort",
        )
        assert here.gateway.get("/", host=here.fqdn) == (200, '{"version": "v1"}')

        # A delay replaces the abort in the same object; a fraction takes a finer denominator.
        _inject(here, Fault(delay_seconds=DELAY_SECONDS, delay_percent=99.5))
        fraction = {"numerator": 9950, "denominator": "TEN_THOUSAND"}
        _wait_fault(canary.proxy, {"delay": {"fixed_delay": "0.600s", "percentage": fraction}})
        _inject(here, Fault(delay_seconds=DELAY_SECONDS, delay_percent=100))
        every = {"numerator": 100, "denominator": "HUNDRED"}
        _wait_fault(canary.proxy, {"delay": {"fixed_delay": "0.600s", "percentage": every}})
        status, body, delayed = canary.get()
        assert (status, body) == (200, '{"version": "v2"}')
        # Envoy's timer runs on its own millisecond clock, so allow it a hair early.
        assert delayed >= DELAY_SECONDS - 0.02, delayed
        status, _, prompt = stable.get()
        assert status == 200
        assert prompt < DELAY_SECONDS / 2, prompt
        assert _elsewhere(here) == {}

        here.router.clear_faults(here.ref)
        _wait_fault(canary.proxy, None)
        assert here.router.faults(here.ref) == ()
        assert canary.get()[:2] == (200, '{"version": "v2"}')
        print(f"fault written to served by the canary's sidecar: {propagation:.3f} s")


def test_the_sweep_removes_an_expired_fault_and_keeps_a_live_one(
    kube_cluster: cluster.KubeCluster, mesh_namespace: str
) -> None:
    namespace = mesh_namespace
    rest = Rest(connect(str(kube_cluster.admin_kubeconfig)))
    cache = ClusterCache(rest, kinds=(DESTINATION_RULE, ENVOY_FILTER))
    for name in ("gone", "live"):
        run.create(
            kube_cluster,
            {
                "apiVersion": run.NETWORKING,
                "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "host": name,
                    "subsets": [
                        {"name": v, "labels": {"app": name, "version": v}} for v in ("v1", "v2")
                    ],
                },
            },
        )
    cache.start()
    try:
        assert cache.wait_synced(30.0), cache.unsynced()
        run.wait(
            "the DestinationRules in the cache",
            lambda: None if cache.of(DESTINATION_RULE).get(namespace, "live") else "not yet",
            timeout=10.0,
        )
        router = KubeRouter(rest, cache)
        now = datetime.now(UTC)
        refs = {}
        for name, expires in (
            ("gone", now - timedelta(seconds=1)),
            ("live", now + timedelta(minutes=5)),
        ):
            refs[name] = RouteRef(
                namespace, name, name, None, name, (SubsetRef("v1"), SubsetRef("v2"))
            )
            fault = Fault(abort_status=500, abort_percent=0.5)
            router.inject(refs[name], InjectFault("x", "v2", fault, expires))

        removed = router.sweep_faults(now)

        assert f"{namespace}/canary-fault-gone" in removed
        assert f"{namespace}/canary-fault-live" not in removed
        status, body = kube_cluster.request("GET", run.collection("EnvoyFilter", namespace))
        assert status == 200, body
        assert [item["metadata"]["name"] for item in body["items"]] == ["canary-fault-live"]
        assert router.faults(refs["gone"]) == ()
        assert router.faults(refs["live"]) == (ActiveFault("x", "v2", now + timedelta(minutes=5)),)
        assert router.sweep_faults(now) == ()
    finally:
        cache.stop()
