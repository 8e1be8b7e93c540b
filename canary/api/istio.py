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


# What Istio joins objects by (hosts, exportTo, merged DestinationRules), shared by the analysis
# and whatever else must agree with it; the functions above stay as they were.

MESH_GATEWAY = "mesh"
ROOT_NAMESPACE = "istio-system"


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


def export_to(obj: IstioObject) -> list[str]:
    return _strings(_spec(obj).get("exportTo"))


def visible_in(obj: IstioObject, owner: str, namespace: str) -> bool:
    """Whether an object of namespace `owner` is exported to `namespace` (none written: all)."""
    return exported(export_to(obj), owner, namespace)


def exported(targets: list[str], owner: str, namespace: str) -> bool:
    if not targets or "*" in targets:
        return True
    return namespace in targets or (namespace == owner and "." in targets)


def workload_selector(obj: IstioObject) -> bool:
    return isinstance(_spec(obj).get("workloadSelector"), dict)


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
