"""Reading the few fields of Istio's VirtualService and DestinationRule that a canary depends on.

The objects stay the dicts they were read as (the controller passes them through and patches
only weights), so this module reads them defensively: a field of the wrong type reads as absent
here, and the check that needs it says what is missing, instead of a traceback.

Host names follow Istio's rule for Kubernetes: a short name (no dot) in a rule of namespace `ns`
means `name.ns.svc.cluster.local`, whatever namespace the service is in; a name with a dot is
taken as written (`reviews.prod` is not expanded), and `*.example.com` matches by suffix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.api import weights as shares

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
    routes: list[Route],
    *,
    name: str | None,
    host: str,
    namespace: str,
    host_namespace: str | None = None,
) -> Route | None:
    """The route named `name`; without a name, the first whose destinations all go to `host`.

    `namespace` is the VirtualService's (its short destination hosts resolve there),
    `host_namespace` the service's (the Canary's; default: the same): a route of a
    VirtualService in a gateway's namespace names the service by a longer name. The
    VirtualService's own hosts play no part, as in Istio: an ingress route for
    `shop.example.com` that sends to `reviews` subsets is the route of `reviews`.
    A route without destinations (a redirect, a delegate) sends nothing to `host`, so it is
    never the default.
    """
    if name is not None:
        return next((route for route in routes if route.name == name), None)
    service_namespace = host_namespace or namespace
    for route in routes:
        if route.destinations and all(
            d.host is not None and host_matches(d.host, namespace, host, service_namespace)
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


def subset_selector(
    given: Mapping[str, str], destination_rule: IstioObject | None, subset: str
) -> dict[str, str]:
    """The labels that select a subset's pods: the Canary's when it gives them, else the
    DestinationRule subset's; empty when neither does (a selector that would take every pod)."""
    if given:
        return dict(given)
    return dict(subsets(destination_rule).get(subset) or {}) if destination_rule else {}


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
    virtual_service: IstioObject,
    *,
    name: str | None,
    host: str,
    namespace: str,
    host_namespace: str | None = None,
) -> Route:
    """The route a Canary manages; `namespace` is the VirtualService's, `host_namespace` the
    service's (default: the same)."""
    routes = http_routes(virtual_service)
    route = select_route(
        routes, name=name, host=host, namespace=namespace, host_namespace=host_namespace
    )
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


def relative_weights(route: Route) -> dict[str, int]:
    """The weight of each subset as Istio reads the route: the sum of its destinations'
    written weights (absent or not a whole number: 0), a lone destination holding 100 whatever
    it says. Relative: Envoy gets these numbers as written, each a share of their total."""
    weights: dict[str, int] = {}
    lone = len(route.destinations) == 1
    for destination in route.destinations:
        key = destination.subset or ""
        weights[key] = weights.get(key, 0) + (100 if lone else shares.written(destination.weight))
    return weights


def live_weights(route: Route) -> dict[str, int]:
    """Each subset's share of the route's traffic in percent, whatever total was written
    (180/20 is 90/10). A share that is not a whole percentage (2/1) is rounded to the nearest,
    yet never to 0 or 100: a subset that gets some traffic, or misses some, is never read as
    one that gets none, or all. A route whose weights total 0 (refused by Istio) reads 0 for
    every subset, so it matches no split and is written over."""
    weights = relative_weights(route)
    total = sum(weights.values())
    if total == 0:
        return weights
    return {subset: shares.percent(weight, total) for subset, weight in weights.items()}


def weighted_destinations(
    virtual_service: IstioObject,
    route: Route,
    *,
    stable: str,
    canary: str,
    canary_weight: int,
) -> list[dict[str, Any]]:
    """The route's `route` list with only weights changed (the rule: api/weights.py): the
    canary gets exactly `canary_weight` percent, the stable subset the rest, spread over its
    destinations as written, any other destination 0. Every other field of every destination
    is kept as written; the canary destination is added (a copy of the first stable one with
    the canary subset) if missing."""
    written = _spec(virtual_service)["http"][route.index].get("route") or []
    for position, entry in enumerate(written):
        if not isinstance(entry, dict):
            raise RouteProblem(f"spec.http[{route.index}].route[{position}]: not an object")
    entries: list[dict[str, Any]] = [json_copy(entry) for entry in written]
    subsets_seen = {_subset_of(entry) for entry in entries}
    if canary not in subsets_seen:
        template = next((e for e in entries if _subset_of(e) == stable), None)
        if template is None:
            raise RouteProblem(
                f"spec.http[{route.index}].route: no destination for the stable subset {stable!r}"
            )
        added = json_copy(template)
        added["destination"]["subset"] = canary
        added["weight"] = 0
        entries.append(added)
    roles = [_subset_of(entry) for entry in entries]
    stable_at = [index for index, subset in enumerate(roles) if subset == stable]
    canary_at = [index for index, subset in enumerate(roles) if subset == canary]
    new = shares.split(
        canary_weight,
        [shares.written(entries[index].get("weight")) for index in stable_at],
        [shares.written(entries[index].get("weight")) for index in canary_at],
    )
    for entry in entries:
        entry["weight"] = 0
    for index, weight in zip([*stable_at, *canary_at], new, strict=True):
        entries[index]["weight"] = weight
    return entries


def _subset_of(entry: dict[str, Any]) -> Any:
    target = entry.get("destination")
    return target.get("subset") if isinstance(target, dict) else None


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
