"""Reading the fields of Istio and Kubernetes objects that only the analysis needs.

Gateways and their server hosts, a route's targets (destinations and mirrors, with ports), its
matches and delegation, `tcp`/`tls` routes, a Service's ports and exportTo. Read defensively,
as `canary.api.istio` reads the fields the controller shares: a field of the wrong type reads
as absent, and the check that needs it says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from canary.api.istio import MESH_GATEWAY, IstioObject, names_match


@dataclass(frozen=True, slots=True)
class Target:
    """A destination or mirror of one http route, with the port it names (None: none)."""

    path: str
    host: str | None
    subset: str | None
    port: int | None


def gateway_names(virtual_service: IstioObject) -> list[str]:
    """`spec.gateways` as written; none written means the mesh's sidecars alone."""
    return _strings(_spec(virtual_service).get("gateways")) or [MESH_GATEWAY]


def gateway_key(reference: str, namespace: str) -> tuple[str, str]:
    """A gateway reference of a VirtualService in `namespace`: `ns/name`, or a short name there."""
    owner, _, name = reference.rpartition("/")
    return (owner or namespace, name)


def service_export_to(service: IstioObject) -> list[str]:
    """A Kubernetes Service's `networking.istio.io/exportTo` annotation, split at commas."""
    meta = service.get("metadata")
    notes = meta.get("annotations") if isinstance(meta, dict) else None
    written = notes.get("networking.istio.io/exportTo") if isinstance(notes, dict) else None
    if not isinstance(written, str):
        return []
    return [part.strip() for part in written.split(",") if part.strip()]


def server_hosts(gateway: IstioObject, namespace: str) -> list[str]:
    """Every server's hosts as Istio's analyzer reads them: `./h` is `namespace/h`, `*/h` `h`."""
    return [host for server in servers(gateway) for host in hosts_of(server, namespace)]


def servers(gateway: IstioObject) -> list[dict[str, Any]]:
    """A Gateway's `spec.servers` that are mappings."""
    written = _spec(gateway).get("servers")
    return [s for s in written if isinstance(s, dict)] if isinstance(written, list) else []


def hosts_of(server: dict[str, Any], namespace: str) -> list[str]:
    """One server's hosts, read as `server_hosts` reads them."""
    found: list[str] = []
    for written in _strings(server.get("hosts")):
        owner, slash, name = written.partition("/")
        if not slash:
            found.append(written)
        elif owner == ".":
            found.append(f"{namespace}/{name}")
        elif owner == "*":
            found.append(name)
        else:
            found.append(written)
    return found


def server_port(server: dict[str, Any]) -> int | None:
    port = server.get("port")
    number = port.get("number") if isinstance(port, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def selector(gateway: IstioObject) -> dict[str, str] | None:
    """A Gateway's `spec.selector` (None: unreadable)."""
    written = _spec(gateway).get("selector")
    return {} if written is None else _labels(written)


def service_target_ports(service: IstioObject) -> set[int]:
    """The ports a Service forwards TCP to, as IngressGatewayPortAnalyzer reads them: each
    port's numeric targetPort and its port (a protocol left out is Kubernetes' TCP)."""
    found: set[int] = set()
    ports = _spec(service).get("ports")
    for entry in ports if isinstance(ports, list) else []:
        if not isinstance(entry, dict) or entry.get("protocol", "TCP") != "TCP":
            continue
        for key in ("port", "targetPort"):
            value = entry.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                found.add(value)
    return found


def gateway_serves(hosts_served: list[str], vs_hosts: list[str], vs_namespace: str) -> bool:
    """Istio's IST0132 rule: some VirtualService host matches some host the servers serve to
    `vs_namespace` (a `ns/host` entry serves that namespace only)."""
    for served in hosts_served:
        owner, slash, name = served.partition("/")
        if slash and owner not in (vs_namespace, "*"):
            continue
        if any(names_match(name if slash else served, host) for host in vs_hosts):
            return True
    return False


def route_targets(virtual_service: IstioObject, index: int) -> list[Target]:
    """The destinations of http route `index`, each with its port."""
    route = _http_entry(virtual_service, index)
    entries = route.get("route")
    return [
        _target(f"spec.http[{index}].route[{position}].destination", entry.get("destination"))
        for position, entry in enumerate(entries if isinstance(entries, list) else [])
        if isinstance(entry, dict)
    ]


def mirror_targets(virtual_service: IstioObject, index: int) -> list[Target]:
    """What http route `index` mirrors to: `mirror`, and each of `mirrors[].destination`."""
    route = _http_entry(virtual_service, index)
    found = []
    if isinstance(route.get("mirror"), dict):
        found.append(_target(f"spec.http[{index}].mirror", route["mirror"]))
    mirrors = route.get("mirrors")
    for position, entry in enumerate(mirrors if isinstance(mirrors, list) else []):
        if isinstance(entry, dict):
            path = f"spec.http[{index}].mirrors[{position}].destination"
            found.append(_target(path, entry.get("destination")))
    return found


def http_matches(virtual_service: IstioObject, index: int) -> list[Any]:
    matches = _http_entry(virtual_service, index).get("match")
    return matches if isinstance(matches, list) else []


def delegate(virtual_service: IstioObject, index: int) -> tuple[str, str] | None:
    """The (namespace, name) an http route delegates to, if it does."""
    found = _http_entry(virtual_service, index).get("delegate")
    if not isinstance(found, dict) or not isinstance(found.get("name"), str):
        return None
    meta = virtual_service.get("metadata")
    owner = meta.get("namespace") if isinstance(meta, dict) else None
    namespace = found.get("namespace") or owner or "default"
    return (str(namespace), found["name"])


def stream_hosts(virtual_service: IstioObject) -> dict[str, list[str]]:
    """The destination hosts of the `tcp` and `tls` routes, by section."""
    found: dict[str, list[str]] = {}
    for section in ("tcp", "tls"):
        routes = _spec(virtual_service).get(section)
        for route in routes if isinstance(routes, list) else []:
            entries = route.get("route") if isinstance(route, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                target = entry.get("destination") if isinstance(entry, dict) else None
                if isinstance(target, dict) and isinstance(target.get("host"), str):
                    found.setdefault(section, []).append(target["host"])
    return found


def service_ports(service: IstioObject) -> list[int]:
    """A Kubernetes Service's `spec.ports[].port`."""
    ports = _spec(service).get("ports")
    return [
        entry["port"]
        for entry in (ports if isinstance(ports, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("port"), int)
    ]


def pod_labels(workload: IstioObject) -> dict[str, str] | None:
    """A Pod's labels, or those of the pods a Deployment runs (`spec.template`); None if unsure."""
    if workload.get("kind") == "Deployment":
        template = _spec(workload).get("template")
        metadata = template.get("metadata") if isinstance(template, dict) else None
    else:
        metadata = workload.get("metadata")
    if not isinstance(metadata, dict):
        return None
    labels = metadata.get("labels")
    return {} if labels is None else _labels(labels)


def service_selector(service: IstioObject) -> dict[str, str] | None:
    """A Service's `spec.selector`, a ServiceEntry's `workloadSelector.labels`; None: unreadable."""
    spec = _spec(service)
    if service.get("kind") == "ServiceEntry":
        selector = spec.get("workloadSelector")
        labels = selector.get("labels") if isinstance(selector, dict) else None
    else:
        labels = spec.get("selector")
    return {} if labels is None else _labels(labels)


def _labels(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return dict(value)


def _http_entry(virtual_service: IstioObject, index: int) -> dict[str, Any]:
    routes = _spec(virtual_service).get("http")
    if not isinstance(routes, list) or not 0 <= index < len(routes):
        return {}
    route = routes[index]
    return route if isinstance(route, dict) else {}


def _target(path: str, written: Any) -> Target:
    written = written if isinstance(written, dict) else {}
    host, subset, port = written.get("host"), written.get("subset"), written.get("port")
    number = port.get("number") if isinstance(port, dict) else None
    return Target(
        path=path,
        host=host if isinstance(host, str) else None,
        subset=subset if isinstance(subset, str) and subset else None,
        port=number if isinstance(number, int) and not isinstance(number, bool) else None,
    )


def _spec(body: IstioObject) -> dict[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, dict) else {}


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
