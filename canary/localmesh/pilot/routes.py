"""VirtualServices as the outbound RouteConfiguration of a sidecar, the way istiod builds it.

One virtual host per service, named `<fqdn>:<port>`, answering to the names a client in the
proxy's namespace can use (FQDN, absolute FQDN, short name, `name.ns`, `name.ns.svc`); ports in
the Host header are ignored (`ignore_port_in_host_matching`), so `demo:8080` finds `demo` too.
A service that no VirtualService routes gets istiod's default route to its subset-less cluster.
A last `*` virtual host answers 502 (istiod's `block_all`, as with REGISTRY_ONLY), since the
local mesh has nowhere to pass unknown hosts through to.

A VirtualService bound to gateways and not to `mesh` is not a sidecar's (`for_mesh`): istiod
gives it to the gateways it names only (`gateway.py`). TCP and TLS routes and delegation are
refused: the local mesh routes HTTP. Routes after a catch-all are kept, where istiod leaves
them out: Envoy never reaches them either, and nothing the user wrote goes missing from the dump.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from canary.localmesh.pilot import failure, fields, http, match
from canary.localmesh.pilot.fields import Json, Report
from canary.localmesh.pilot.model import ROUTE_TYPE, cluster_name

_VS_KEYS = {"hosts", "gateways", "http", "exportTo"}
_VS_REFUSED = {
    "tcp": "the local mesh routes HTTP only",
    "tls": "the local mesh routes HTTP only, with no TLS listener",
}
# istiod's route.DefaultMaxDirectResponseBodySizeBytes
_MAX_DIRECT_RESPONSE_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Routed:
    """One VirtualService as read: the service FQDNs it claims and the routes for them."""

    hosts: list[tuple[int, str]]  # (index in spec.hosts, FQDN)
    routes: list[Json]


def read_virtual_service(
    report: Report,
    spec: Mapping[str, Any],
    *,
    source: http.Source,
    host_fqdn: Callable[[str], str | None],
) -> Routed:
    """`host_fqdn` gives a spec.hosts entry's service FQDN, or None when no workload serves it."""
    fields.check_keys(report, spec, "spec", supported=_VS_KEYS, refused=_VS_REFUSED)
    hosts: list[tuple[int, str]] = []
    written = fields.get_strings(report, spec, "hosts", "spec")
    if not written:
        report.refuse("spec.hosts", "none given; delegate VirtualServices are not implemented")
    for index, host in enumerate(written or []):
        if "*" in host:
            report.refuse(f"spec.hosts[{index}]", f"wildcard host {host!r}; name the service")
            continue
        found = host_fqdn(host)
        if found is None:
            report.refuse(f"spec.hosts[{index}]", f"no workload of the local mesh serves {host!r}")
        else:
            hosts.append((index, found))
    return Routed(hosts=hosts, routes=read_routes(report, spec, source=source, checked=True))


def read_routes(
    report: Report, spec: Mapping[str, Any], *, source: http.Source, checked: bool = False
) -> list[Json]:
    """The VirtualService's http routes as Envoy routes, for the proxy `source.client` names;
    `checked`: its keys were checked already."""
    if not checked:
        fields.check_keys(report, spec, "spec", supported=_VS_KEYS, refused=_VS_REFUSED)
    # Named gateways are the gateway translation's to resolve; a sidecar takes `mesh`'s part.
    fields.get_strings(report, spec, "gateways", "spec")
    routes: list[Json] = []
    entries = fields.get_list(report, spec, "http", "spec")
    if not entries and "tcp" not in spec and "tls" not in spec:
        report.invalid("spec.http", "no http routes")
    for index, entry in enumerate(entries or []):
        path = f"spec.http[{index}]"
        route = fields.mapping(report, entry, path)
        if route is not None:
            routes.extend(http.translate(report, route, path, source))
    return routes


def for_mesh(body: Mapping[str, Any]) -> bool:
    """Whether sidecars get this VirtualService: no `gateways` means `mesh` alone."""
    spec = body.get("spec")
    gateways = spec.get("gateways") if isinstance(spec, Mapping) else None
    if not isinstance(gateways, list) or not gateways:
        return True
    return "mesh" in gateways


def default_route(fqdn: str, port: int) -> Json:
    """istiod's route for a service without a VirtualService: all to the subset-less cluster."""
    return {
        "name": "default",
        "match": {"prefix": "/"},
        "route": {
            "cluster": cluster_name(fqdn, port),
            "timeout": "0s",
            "retry_policy": failure.default_retry_policy(),
        },
        "decorator": {"operation": f"{fqdn}:{port}/*"},
    }


def virtual_host(fqdn: str, *, client: match.Client, routes: list[Json]) -> Json:
    return {
        "name": f"{fqdn}:{client.port}",
        "domains": domains(fqdn, client.namespace),
        "routes": routes,
        "include_request_attempt_count": True,
    }


def domains(fqdn: str, namespace: str) -> list[str]:
    """The Host names a client in `namespace` can reach a Kubernetes service by (istiod's list)."""
    short, service_namespace = fqdn.split(".")[:2]
    if service_namespace == namespace:
        alternatives = [short, f"{short}.{namespace}.svc", f"{short}.{namespace}"]
    else:
        alternatives = [f"{short}.{service_namespace}", f"{short}.{service_namespace}.svc"]
    return [fqdn, f"{fqdn}.", *alternatives]


def route_configuration(port: int, virtual_hosts: list[Json]) -> Json:
    block_all = {
        "name": "block_all",
        "domains": ["*"],
        "routes": [
            {"name": "block_all", "match": {"prefix": "/"}, "direct_response": {"status": 502}}
        ],
        "include_request_attempt_count": True,
    }
    return {
        "@type": ROUTE_TYPE,
        # istiod names a sidecar's outbound HTTP route configuration after the port.
        "name": str(port),
        "virtual_hosts": [*virtual_hosts, block_all],
        "validate_clusters": False,
        "ignore_port_in_host_matching": True,
        "max_direct_response_body_size_bytes": _MAX_DIRECT_RESPONSE_BODY,
    }
