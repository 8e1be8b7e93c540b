"""Whether traffic reaches the Gateways a managed route is bound to: an edge canary's front door.

Two of Istio's Gateway analyzers, asked of each server of such a Gateway that serves the
VirtualService's hosts (reported on the Canary, since its traffic never arrives):
- IST0162 (IngressGatewayPortAnalyzer): the server's port is not one the Services selecting
  the gateway's pods forward TCP to (a port or numeric targetPort), so the port opens on the
  proxy but no load balancer sends to it. The pods are those the Gateway's `selector` matches,
  among the Pods and Deployments' pod templates of the paths, the Services those of the pods'
  namespaces; with no such pods, or no Service selecting them in the paths, both are taken to
  be in the cluster and nothing is said (Istio says IST0101 for a selector without pods).
- IST0145 (ConflictingGatewayAnalyzer): another Gateway for the same gateway pods (an equal
  selector, or one within the other with a pod in the paths matching both) has a server on the
  same port with one of the same hosts (as written, with the same `bind`): the proxy takes
  only one of them, so the route may never be served.
Both are worked out once per Gateway and reused by every Canary behind it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from canary.api import istio as mesh
from canary.validation import fields
from canary.validation.findings import About
from canary.validation.inventory import Index, Key, Placed, istio_key

PORT_NOT_ON_SERVICE = "IST0162"
CONFLICT = "IST0145"


@dataclass(frozen=True, slots=True)
class _Server:
    gateway: Key
    selector: str
    port: int
    hosts: frozenset[str]
    bind: str


def check(about: About, path: str, index: Index, placed: Placed[mesh.IstioObject]) -> None:
    namespace, name = istio_key(placed)
    written = mesh.hosts(placed.obj)
    for reference in fields.gateway_names(placed.obj):
        if reference == mesh.MESH_GATEWAY:
            continue
        key = fields.gateway_key(reference, namespace)
        gateway = index.gateways.get(key)
        if gateway is None:
            continue
        exposed = _exposed_ports(index, gateway)
        for server in fields.servers(gateway.obj):
            port = fields.server_port(server)
            if port is None or not fields.gateway_serves(
                fields.hosts_of(server, key[0]), written, namespace
            ):
                continue
            where = f"VirtualService {namespace}/{name} is bound to Gateway {'/'.join(key)}"
            if exposed is not None and port not in exposed[1]:
                about.add(
                    path,
                    f"{where}, whose server on port {port} is on no port of {exposed[0]} "
                    f"(they forward to: {', '.join(map(str, sorted(exposed[1]))) or 'none'}), so "
                    "no request reaches it through the gateway's Service",
                    code=PORT_NOT_ON_SERVICE,
                )
            memo = ("gateway-rivals", id(server))
            if memo not in index.memo:
                index.memo[memo] = _rivals(index, gateway, server, port)
            rivals: list[str] = index.memo[memo]
            if rivals:
                about.add(
                    path,
                    f"{where}, whose server on port {port} ({', '.join(_hosts(server))}) "
                    f"conflicts with Gateway {', '.join(rivals)} on the same gateway pods: the "
                    "proxy serves only one of them, so the route may never be served",
                    code=CONFLICT,
                )


def _exposed_ports(index: Index, gateway: Placed[mesh.IstioObject]) -> tuple[str, set[int]] | None:
    """The Services that select the gateway's pods and the ports they forward to; None when the
    paths hold no such pods or no such Service."""
    memo = ("gateway-ports", id(gateway))
    if memo not in index.memo:
        index.memo[memo] = _worked_out_ports(index, gateway)
    found: tuple[str, set[int]] | None = index.memo[memo]
    return found


def _worked_out_ports(
    index: Index, gateway: Placed[mesh.IstioObject]
) -> tuple[str, set[int]] | None:
    wanted = fields.selector(gateway.obj)
    if not wanted:
        return None
    pods = {
        namespace: [labels for labels in all_labels if _selects(wanted, labels)]
        for namespace, all_labels in index.pod_labels.items()
    }
    names: list[str] = []
    ports: set[int] = set()
    for (namespace, name), service in index.services.items():
        chosen = fields.service_selector(service.obj)
        if chosen and any(_selects(chosen, labels) for labels in pods.get(namespace, [])):
            names.append(f"Service {namespace}/{name}")
            ports |= fields.service_target_ports(service.obj)
    return (", ".join(names), ports) if names else None


def _rivals(
    index: Index, gateway: Placed[mesh.IstioObject], server: dict[str, Any], port: int
) -> list[str]:
    hosts = set(_hosts(server))
    bind = server.get("bind") if isinstance(server.get("bind"), str) else ""
    mine = _selector_key(gateway)
    if mine is None:
        return []
    me = istio_key(gateway)
    found: list[str] = []
    for other in _servers(index).get(port, []):
        if other.gateway == me or other.bind != bind or not hosts & other.hosts:
            continue
        if _same_pods(index, mine, other.selector):
            found.append("/".join(other.gateway))
    return sorted(set(found))


def _servers(index: Index) -> dict[int, list[_Server]]:
    """Every Gateway's servers by port, built once per Index."""
    memo = ("gateway-servers", 0)
    if memo not in index.memo:
        by_port: dict[int, list[_Server]] = {}
        for key, gateway in index.gateways.items():
            selector = _selector_key(gateway)
            if selector is None:
                continue
            for server in fields.servers(gateway.obj):
                port = fields.server_port(server)
                bind = server.get("bind")
                if port is not None:
                    by_port.setdefault(port, []).append(
                        _Server(
                            key,
                            selector,
                            port,
                            frozenset(_hosts(server)),
                            bind if isinstance(bind, str) else "",
                        )
                    )
        index.memo[memo] = by_port
    built: dict[int, list[_Server]] = index.memo[memo]
    return built


def _same_pods(index: Index, one: str, other: str) -> bool:
    if one == other:
        return True
    first, second = json.loads(one), json.loads(other)
    if not (first.items() <= second.items() or second.items() <= first.items()):
        return False
    both = {**first, **second}
    return any(_selects(both, labels) for pods in index.pod_labels.values() for labels in pods)


def _selector_key(gateway: Placed[mesh.IstioObject]) -> str | None:
    """The selector as a comparable string; None when it cannot be read (then never judged)."""
    selector = fields.selector(gateway.obj)
    return None if selector is None else json.dumps(selector, sort_keys=True)


def _hosts(server: dict[str, Any]) -> list[str]:
    written = server.get("hosts")
    return [h for h in written if isinstance(h, str)] if isinstance(written, list) else []


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())
