"""A service whose versions each run behind a sidecar Envoy that istiod programs.

Each version's proxy is a stock Envoy with interception NONE: its one inbound listener comes
from a `Sidecar` resource's `ingress` and forwards to the version's app, and the service's
WorkloadEntries point at those inbound listeners, as a pod's IP would. That puts the sidecar on
every caller's path, so a fault istiod installs on it (SIDECAR_INBOUND) is what callers meet.
Why each piece: no iptables, so interception NONE, and then a `Sidecar`'s `ingress` is the
only way istiod writes an inbound listener; no kubelet, so WorkloadEntries stand in for Pod IPs;
no SDS in a stock Envoy, so a PeerAuthentication turns mTLS off for the namespace.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.adapters.kube.faults import FILTER_NAME, NAME_PREFIX
from canary.localmesh import procs
from tests.e2e.istio.conftest import assert_no_nacks
from tests.istiod import run
from tests.kubeenv import cluster

Json = dict[str, Any]

SERVICE = "demo"
# Write-to-Envoy is ~0.1 s here (10 ms debounce); the bound is for a loaded CI machine.
PROPAGATION_TIMEOUT = 30.0
PEER_AUTHENTICATION = "/apis/security.istio.io/v1/namespaces/{}/peerauthentications"
# The chaos tests' shared parts: the service's fault EnvoyFilter, a Prometheus address that
# refuses at once (a verdict is then unknown, never a guess), and the fault every request gets.
FAULT_FILTER = f"{NAME_PREFIX}{SERVICE}"
NO_PROMETHEUS = "http://127.0.0.1:1"
ABORT_ALL = {"http_status": 503, "percentage": {"numerator": 100, "denominator": "HUNDRED"}}


@dataclass
class Version:
    """One version: its sidecar Envoy and the inbound port it listens on in front of the app."""

    name: str
    proxy: run.Proxy
    inbound_port: int

    def get(self) -> tuple[int, str, float]:
        """One request straight to the version's inbound listener: status, body, seconds."""
        began = time.monotonic()
        status, body = run.get(self.inbound_port, host=SERVICE)
        return status, body, time.monotonic() - began


def fqdn_of(namespace: str) -> str:
    return f"{SERVICE}.{namespace}.svc.cluster.local"


def destination_rule(namespace: str) -> Json:
    """Subsets by app and version, so the fault's workload selector names this service alone."""
    return {
        "apiVersion": run.NETWORKING,
        "kind": "DestinationRule",
        "metadata": {"name": SERVICE, "namespace": namespace},
        "spec": {
            "host": fqdn_of(namespace),
            # A stock Envoy has no SDS: no mTLS toward the sidecars.
            "trafficPolicy": {"tls": {"mode": "DISABLE"}},
            "subsets": [
                {"name": v, "labels": {"app": SERVICE, "version": v}} for v in ("v1", "v2")
            ],
        },
    }


def gateway_routing(namespace: str, route: str) -> list[Json]:
    """The DestinationRule and a VirtualService bound to the gateway `gw`, all to v1."""
    fqdn = fqdn_of(namespace)
    service = {
        "apiVersion": run.NETWORKING,
        "kind": "VirtualService",
        "metadata": {"name": SERVICE, "namespace": namespace},
        "spec": {
            "hosts": [fqdn],
            "gateways": ["gw"],
            "http": [
                {
                    "name": route,
                    "route": [
                        {"destination": {"host": fqdn, "subset": "v1"}, "weight": 100},
                        {"destination": {"host": fqdn, "subset": "v2"}, "weight": 0},
                    ],
                }
            ],
        },
    }
    return [destination_rule(namespace), service]


def abort_canary(
    namespace: str,
    *,
    route: str,
    experiment: str,
    interval: str,
    check_interval: str,
    duration: str,
) -> Json:
    """A one-step (50%) Canary whose experiment answers 503 to every request of v2."""
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": SERVICE, "namespace": namespace},
        "spec": {
            "service": {
                "host": fqdn_of(namespace),
                "virtualService": SERVICE,
                "destinationRule": SERVICE,
                "route": route,
            },
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {
                "interval": interval,
                "checkInterval": check_interval,
                "stepWeights": [50],
            },
            "chaos": [
                {
                    "name": experiment,
                    "atWeight": 50,
                    "duration": duration,
                    "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
                    "onFailure": "rollback",
                }
            ],
        },
    }


def fault_filter(kube: cluster.KubeCluster, namespace: str) -> Json | None:
    """The service's fault EnvoyFilter as the API server holds it; None when there is none."""
    path = f"{run.collection('EnvoyFilter', namespace)}/{FAULT_FILTER}"
    status, body = kube.request("GET", path)
    if status == 404:
        return None
    assert status == 200, body
    found: Json = body
    return found


def _sidecar(namespace: str, version: str, inbound_port: int, app_port: int) -> Json:
    """The Sidecar that gives a version's proxy its inbound listener (interception NONE binds
    only what `ingress` names) and no outbound one (egress to a host that does not exist)."""
    return {
        "apiVersion": run.NETWORKING,
        "kind": "Sidecar",
        "metadata": {"name": f"{SERVICE}-{version}", "namespace": namespace},
        "spec": {
            "workloadSelector": {"labels": {"app": SERVICE, "version": version}},
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
def versions(
    kube: cluster.KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    namespace: str,
    workdir: Path,
    *,
    objects: Iterable[Json] = (),
) -> Iterator[dict[str, Version]]:
    """The service `demo` in `namespace`, one sidecar per backend version, LIVE; `objects`
    (routing, say) are created with the service, before any proxy connects.

    On the way out without an error, a NACK from either sidecar fails the test.
    """
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
    endpoints = [run.Backend(version, "127.0.0.1", port) for version, port in inbound.items()]
    service = run.service_objects(SERVICE, namespace, endpoints)
    run.create(kube, *sidecars, *service, *objects)
    _wait_istiod_has(istiod, "Sidecar", namespace, {s["metadata"]["name"] for s in sidecars})
    started: dict[str, Version] = {}
    try:
        for index, version in enumerate(sorted(apps)):
            proxy = run.start_sidecar(
                istiod,
                workdir / version,
                name=f"{SERVICE}-{version}",
                namespace=namespace,
                labels={"app": SERVICE, "version": version},
                # Addresses no WorkloadEntry uses, or istiod gives the proxy that WE's labels.
                ip=f"127.0.0.{21 + index}",
            )
            started[version] = Version(version, proxy, inbound[version])
        for each in started.values():
            procs.wait_http(f"http://127.0.0.1:{each.inbound_port}/", timeout=PROPAGATION_TIMEOUT)
        yield started
        for each in started.values():
            assert_no_nacks(istiod, each.proxy)
    finally:
        for each in started.values():
            each.proxy.stop()
        kube.request("DELETE", PEER_AUTHENTICATION.format(namespace))


def fault_filters(proxy: run.Proxy) -> list[Json]:
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


def wait_fault(
    proxy: run.Proxy, wanted: Json | None, *, timeout: float = PROPAGATION_TIMEOUT
) -> float:
    """Waits until the proxy's one fault filter is configured as `wanted`, or (None) is gone;
    the seconds it took."""
    began = time.monotonic()
    seen: list[Json] = []

    def check() -> str | None:
        nonlocal seen
        seen = [as_written(config) for config in fault_filters(proxy)]
        done = seen == ([] if wanted is None else [wanted])
        return None if done else f"fault filters: {seen}"

    run.wait(f"{proxy.node_id} to serve fault {wanted}", check, timeout=timeout)
    return time.monotonic() - began


def as_written(config: Json) -> Json:
    """A config_dump's HTTPFault as we wrote it: proto JSON leaves out a default enum value,
    so a percentage per HUNDRED shows no denominator."""
    found = {key: dict(value) for key, value in config.items() if key in ("abort", "delay")}
    for part in found.values():
        part["percentage"] = {"denominator": "HUNDRED", **part.get("percentage", {})}
    return found
