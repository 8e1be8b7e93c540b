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

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.faults import FILTER_NAME
from canary.adapters.kube.rest import DESTINATION_RULE, ENVOY_FILTER, Rest, connect
from canary.adapters.kube.router import KubeRouter
from canary.engine.actions import Fault, InjectFault
from canary.engine.observation import ActiveFault
from canary.ports import RouteRef, SubsetRef
from tests.e2e.istio import sidecars
from tests.e2e.istio.conftest import GatewayUnderTest
from tests.istiod import run
from tests.kubeenv import cluster

DELAY_SECONDS = 0.6


@dataclass
class Mesh:
    namespace: str
    fqdn: str
    versions: dict[str, sidecars.Version]
    gateway: GatewayUnderTest
    router: KubeRouter
    ref: RouteRef


def _virtual_service(namespace: str, fqdn: str) -> sidecars.Json:
    """The canary by a header, the stable version otherwise: each reachable on demand."""
    return {
        "apiVersion": run.NETWORKING,
        "kind": "VirtualService",
        "metadata": {"name": sidecars.SERVICE, "namespace": namespace},
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


@contextlib.contextmanager
def mesh(
    kube: cluster.KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
    workdir: Path,
) -> Iterator[Mesh]:
    namespace = gateway.namespace
    fqdn = sidecars.fqdn_of(namespace)
    routing = [sidecars.destination_rule(namespace), _virtual_service(namespace, fqdn)]
    rest = Rest(connect(str(kube.admin_kubeconfig)))
    cache = ClusterCache(rest, kinds=(DESTINATION_RULE, ENVOY_FILTER))
    with sidecars.versions(kube, istiod, backends, namespace, workdir, objects=routing) as found:
        cache.start()
        try:
            assert cache.wait_synced(30.0), cache.unsynced()
            ref = RouteRef(
                namespace=namespace,
                virtual_service=sidecars.SERVICE,
                host=fqdn,
                route=None,
                destination_rule=sidecars.SERVICE,
                subsets=(SubsetRef("v1"), SubsetRef("v2")),
            )
            yield Mesh(namespace, fqdn, found, gateway, KubeRouter(rest, cache), ref)
        finally:
            cache.stop()


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
        sidecars.wait_fault(canary.proxy, {"abort": abort})
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
        sidecars.wait_fault(
            canary.proxy, {"delay": {"fixed_delay": "0.600s", "percentage": fraction}}
        )
        _inject(here, Fault(delay_seconds=DELAY_SECONDS, delay_percent=100))
        every = {"numerator": 100, "denominator": "HUNDRED"}
        sidecars.wait_fault(canary.proxy, {"delay": {"fixed_delay": "0.600s", "percentage": every}})
        status, body, delayed = canary.get()
        assert (status, body) == (200, '{"version": "v2"}')
        # Envoy's timer runs on its own millisecond clock, so allow it a hair early.
        assert delayed >= DELAY_SECONDS - 0.02, delayed
        status, _, prompt = stable.get()
        assert status == 200
        assert prompt < DELAY_SECONDS / 2, prompt
        assert _elsewhere(here) == {}

        here.router.clear_faults(here.ref)
        sidecars.wait_fault(canary.proxy, None)
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
