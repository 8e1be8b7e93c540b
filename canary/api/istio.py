"""Reading the few fields of Istio's VirtualService and DestinationRule that a canary depends on.

The objects stay the dicts they were read as (the controller passes them through and patches
only weights), so this module reads them defensively: a field of the wrong type reads as absent
here, and the check that needs it says what is missing, instead of a traceback.

Host names follow Istio's rule for Kubernetes: a short name (no dot) in a rule of namespace `ns`
means `name.ns.svc.cluster.local`, whatever namespace the service is in; a name with a dot is
taken as written (`reviews.prod` is not expanded), and `*.example.com` matches by suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Istio objects stay the dicts they were read as: canary passes them through and patches only
# weights, so modelling their specs would only invent a second, stale idea of what Istio accepts.
IstioObject = dict[str, Any]

DOMAIN_SUFFIX = "svc.cluster.local"


@dataclass(frozen=True, slots=True)
class Destination:
    path: str
    host: str | None
    subset: str | None
    # The weight as written; None when absent, which Istio reads as 0 unless it is the only one.
    weight: Any

    @property
    def label(self) -> str:
        return f"{self.host}/{self.subset}" if self.subset else f"{self.host} (no subset)"


@dataclass(frozen=True, slots=True)
class Route:
    index: int
    name: str | None
    has_match: bool
    destinations: tuple[Destination, ...]

    @property
    def path(self) -> str:
        return f"spec.http[{self.index}]"

    @property
    def label(self) -> str:
        """How a route is named in messages: by its name, or by its place when it has none."""
        return self.name or f"http[{self.index}]"


def fqdn(host: str, namespace: str) -> str:
    if "." in host or "*" in host:
        return host
    return f"{host}.{namespace}.{DOMAIN_SUFFIX}"


def host_matches(pattern: str, pattern_namespace: str, host: str, host_namespace: str) -> bool:
    """Whether `pattern` (a VirtualService host, maybe a wildcard) names `host`."""
    wanted = fqdn(host, host_namespace)
    written = fqdn(pattern, pattern_namespace)
    if written.startswith("*"):
        return wanted.endswith(written[1:])
    return written == wanted


def hosts(virtual_service: IstioObject) -> list[str]:
    return _strings(_spec(virtual_service).get("hosts"))


def http_routes(virtual_service: IstioObject) -> list[Route]:
    routes = _spec(virtual_service).get("http")
    if not isinstance(routes, list):
        return []
    return [_route(index, route) for index, route in enumerate(routes)]


def select_route(
    routes: list[Route], *, name: str | None, host: str, namespace: str
) -> Route | None:
    """The route named `name`; without a name, the first whose destinations all go to `host`.

    A route without destinations (a redirect, a delegate) sends nothing to `host`, so it is
    never the default.
    """
    if name is not None:
        return next((route for route in routes if route.name == name), None)
    for route in routes:
        if route.destinations and all(
            d.host is not None and host_matches(d.host, namespace, host, namespace)
            for d in route.destinations
        ):
            return route
    return None


def route_labels(routes: list[Route]) -> str:
    return ", ".join(route.label for route in routes) or "none"


def destination_host(destination_rule: IstioObject) -> str | None:
    host = _spec(destination_rule).get("host")
    return host if isinstance(host, str) else None


def subsets(destination_rule: IstioObject) -> dict[str, dict[str, str]]:
    """The subsets by name, each with its labels as strings (none: an empty mapping)."""
    found: dict[str, dict[str, str]] = {}
    entries = _spec(destination_rule).get("subsets")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            labels = entry.get("labels")
            found.setdefault(
                entry["name"],
                {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            )
    return found


def _route(index: int, route: Any) -> Route:
    if not isinstance(route, dict):
        return Route(index, None, False, ())
    name = route.get("name")
    entries = route.get("route")
    destinations = tuple(
        _destination(f"spec.http[{index}].route[{position}]", entry)
        for position, entry in enumerate(entries if isinstance(entries, list) else [])
    )
    return Route(
        index=index,
        name=name if isinstance(name, str) and name else None,
        has_match=bool(route.get("match")),
        destinations=destinations,
    )


def _destination(path: str, entry: Any) -> Destination:
    entry = entry if isinstance(entry, dict) else {}
    target = entry.get("destination")
    target = target if isinstance(target, dict) else {}
    host, subset = target.get("host"), target.get("subset")
    return Destination(
        path=path,
        host=host if isinstance(host, str) else None,
        subset=subset if isinstance(subset, str) and subset else None,
        weight=entry.get("weight"),
    )


def _spec(body: IstioObject) -> dict[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, dict) else {}


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


class RouteProblem(ValueError):
    """The managed route cannot be found or cannot be weighted; the message names the field."""


def managed_route(
    virtual_service: IstioObject, *, name: str | None, host: str, namespace: str
) -> Route:
    routes = http_routes(virtual_service)
    route = select_route(routes, name=name, host=host, namespace=namespace)
    if route is not None:
        return route
    meta = virtual_service.get("metadata") or {}
    who = f"VirtualService {meta.get('namespace', namespace)}/{meta.get('name')}"
    if name is not None:
        raise RouteProblem(
            f"spec.service.route: {who} has no http route named {name!r} "
            f"(routes: {route_labels(routes)})"
        )
    raise RouteProblem(
        f"spec.service.host: {who} has no http route whose destinations all go to {host!r}"
    )


def live_weights(route: Route) -> dict[str, int]:
    """The weight of each subset in the route; a lone destination without a weight holds 100."""
    weights: dict[str, int] = {}
    lone = len(route.destinations) == 1
    for destination in route.destinations:
        written = destination.weight
        weight = written if isinstance(written, int) else (100 if lone else 0)
        key = destination.subset or ""
        weights[key] = weights.get(key, 0) + weight
    return weights


def weighted_destinations(
    virtual_service: IstioObject,
    route: Route,
    *,
    stable: str,
    canary: str,
    canary_weight: int,
) -> list[dict[str, Any]]:
    """The route's `route` list with only weights changed: stable and canary get their share,
    any other destination 0. Every other field of every destination is kept as written; the
    canary destination is added (a copy of the stable one with the canary subset) if missing."""
    written = _spec(virtual_service)["http"][route.index].get("route") or []
    entries: list[dict[str, Any]] = [json_copy(entry) for entry in written]
    subsets_seen = {(entry.get("destination") or {}).get("subset") for entry in entries}
    if canary not in subsets_seen:
        template = next(
            (e for e in entries if (e.get("destination") or {}).get("subset") == stable), None
        )
        if template is None:
            raise RouteProblem(
                f"spec.http[{route.index}].route: no destination for the stable subset {stable!r}"
            )
        added = json_copy(template)
        added["destination"]["subset"] = canary
        entries.append(added)
    for entry in entries:
        subset = (entry.get("destination") or {}).get("subset")
        entry["weight"] = (
            canary_weight if subset == canary else 100 - canary_weight if subset == stable else 0
        )
    return entries


def json_copy(value: Any) -> Any:
    """A deep copy of plain JSON data (dicts, lists, scalars), cheaper than copy.deepcopy."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


# Reading the rest of what Istio joins a canary's objects by: gateways, exportTo, mirrors,
# ports, matches. Added for `canary validate`'s analysis; the functions above stay as they were.

MESH_GATEWAY = "mesh"
ROOT_NAMESPACE = "istio-system"


@dataclass(frozen=True, slots=True)
class Target:
    """A destination or mirror of one http route, with the port it names (None: none)."""

    path: str
    host: str | None
    subset: str | None
    port: int | None


def names_match(one: str, other: str) -> bool:
    """Istio's `host.Name.Matches`: equal names, or a wildcard on either side covering the other."""
    if one.startswith("*") and other.startswith("*"):
        shorter, longer = sorted((one, other), key=len)
        return longer[1:].endswith(shorter[1:])
    if one.startswith("*"):
        return other.endswith(one[1:])
    if other.startswith("*"):
        return one.endswith(other[1:])
    return one == other


def gateway_names(virtual_service: IstioObject) -> list[str]:
    """`spec.gateways` as written; none written means the mesh's sidecars alone."""
    return _strings(_spec(virtual_service).get("gateways")) or [MESH_GATEWAY]


def gateway_key(reference: str, namespace: str) -> tuple[str, str]:
    """A gateway reference of a VirtualService in `namespace`: `ns/name`, or a short name there."""
    owner, _, name = reference.rpartition("/")
    return (owner or namespace, name)


def export_to(obj: IstioObject) -> list[str]:
    return _strings(_spec(obj).get("exportTo"))


def visible_in(obj: IstioObject, owner: str, namespace: str) -> bool:
    """Whether an object of namespace `owner` is exported to `namespace` (none written: all)."""
    return exported(export_to(obj), owner, namespace)


def service_export_to(service: IstioObject) -> list[str]:
    """A Kubernetes Service's `networking.istio.io/exportTo` annotation, split at commas."""
    meta = service.get("metadata")
    notes = meta.get("annotations") if isinstance(meta, dict) else None
    written = notes.get("networking.istio.io/exportTo") if isinstance(notes, dict) else None
    if not isinstance(written, str):
        return []
    return [part.strip() for part in written.split(",") if part.strip()]


def exported(targets: list[str], owner: str, namespace: str) -> bool:
    if not targets or "*" in targets:
        return True
    return namespace in targets or (namespace == owner and "." in targets)


def workload_selector(obj: IstioObject) -> bool:
    return isinstance(_spec(obj).get("workloadSelector"), dict)


def server_hosts(gateway: IstioObject, namespace: str) -> list[str]:
    """Every server's hosts as Istio's analyzer reads them: `./h` is `namespace/h`, `*/h` `h`."""
    found: list[str] = []
    servers = _spec(gateway).get("servers")
    for server in servers if isinstance(servers, list) else []:
        for written in _strings(server.get("hosts") if isinstance(server, dict) else None):
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


def service_namespace(host: str) -> str | None:
    """The namespace in a cluster service's full name (`name.ns.svc.cluster.local`), if any."""
    name, _, rest = host.partition(".")
    namespace, _, suffix = rest.partition(".")
    return namespace if name and namespace and suffix == DOMAIN_SUFFIX else None


def select_service_route(
    routes: list[Route], *, name: str | None, service: str, namespace: str
) -> Route | None:
    """Like `select_route`, but by the service's full name: the route named `name`; without a
    name, the first whose destinations, read in the VirtualService's `namespace`, all go to
    `service`. The VirtualService's own hosts play no part: an ingress route's hosts are the
    names callers use (`shop.example.com`), its destinations the service."""
    if name is not None:
        return next((route for route in routes if route.name == name), None)
    for route in routes:
        if route.destinations and all(
            d.host is not None and fqdn(d.host, namespace) == service for d in route.destinations
        ):
            return route
    return None


def subset_entries(destination_rule: IstioObject) -> list[dict[str, Any]]:
    """The subsets as written, every named one kept (duplicates too), in order."""
    entries = _spec(destination_rule).get("subsets")
    return [
        entry
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    ]


def traffic_policy(destination_rule: IstioObject) -> Any:
    return _spec(destination_rule).get("trafficPolicy")
