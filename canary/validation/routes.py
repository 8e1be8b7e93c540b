"""The managed route: which http route of which VirtualService a Canary moves, and whether it can.

Istio routes by destination, so the route is found by where it sends, never by the
VirtualService's own hosts (an ingress route's hosts are the names callers type, its
destinations the service); the hosts matter only to say which requests reach the routes:
- The VirtualService is `spec.service.virtualService` (default: the host) in
  `virtualServiceNamespace` (default: the Canary's). The service is `spec.service.host` read in
  the Canary's namespace; each destination's host is read in the VirtualService's.
- A VirtualService bound to the mesh alone (no `gateways`, or only `mesh`) applies to requests
  for its own hosts only, so those must include the service (a wildcard may).
- The route is `spec.service.route` by name, else the first http route whose destinations (one
  at least) all go to the service. A default route with a `match` is a finding: only matching
  requests would move; naming the route says that is meant.
- The route sends to the stable subset, in one destination or several (one per port, say: the
  controller splits the stable share in the written proportions); the canary subset may be
  absent (the controller adds it at weight 0). Anything else (another host, a third subset, no
  subset) is a finding, since the controller only moves weight between the two subsets.
- Weights are relative, as Istio reads them since 1.15: whole numbers >= 0, a missing one 0, and
  with several destinations any total but 0 (Istio refuses 0).
- The route must be reachable (IST0130, Istio's rule): no route without a match before it, and
  not every one of its matches already taken by an earlier route. Nor may each of its matches
  be covered by an earlier `uri.prefix` match (Istio marks each such match IST0131, ineffective;
  a route with all of them so is never used, so the finding carries IST0131).
- A host reached only by `tcp`/`tls` routes, or a VirtualService whose routes delegate, cannot
  be managed, and the finding says so in those words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from canary.api import istio as mesh
from canary.api.resources import Canary
from canary.validation import fields
from canary.validation.findings import About
from canary.validation.inventory import Index, Key, Placed, model_key, not_found

UNREACHABLE = "IST0130"
INEFFECTIVE = "IST0131"


@dataclass(frozen=True, slots=True)
class Managed:
    """What a Canary manages: its VirtualService (when in the paths) and the route there."""

    key: Key
    service: str
    placed: Placed[mesh.IstioObject] | None
    route: mesh.Route | None

    @property
    def name(self) -> str:
        return f"VirtualService {self.key[0]}/{self.key[1]}"


def service_host(canary: Canary) -> str:
    """The Canary's service as Istio names it: a short host is in the Canary's namespace."""
    return mesh.fqdn(canary.spec.service.host, model_key(canary)[0])


def find(canary: Canary, index: Index) -> Managed:
    key = canary.spec.service.virtual_service_key(model_key(canary)[0])
    placed = index.virtual_services.get(key)
    service = service_host(canary)
    route = None
    if placed is not None:
        route = mesh.select_route(
            mesh.http_routes(placed.obj),
            name=canary.spec.service.route,
            host=canary.spec.service.host,
            namespace=key[0],
            host_namespace=model_key(canary)[0],
        )
    return Managed(key, service, placed, route)


def vs_path(canary: Canary) -> str:
    """Where a Canary names its VirtualService: the field to fix when the wrong one is found."""
    written = canary.spec.service
    if written.virtual_service_namespace is not None:
        return "spec.service.virtualServiceNamespace"
    return "spec.service.virtualService" if written.virtual_service else "spec.service.host"


def check(about: About, canary: Canary, index: Index, managed: Managed) -> None:
    service = canary.spec.service
    if managed.placed is None:
        if index.virtual_services:
            about.add(
                vs_path(canary), f"VirtualService {not_found(managed.key, index.virtual_services)}"
            )
        return
    vs = managed.placed.obj
    _check_mesh_hosts(about, managed)
    route = managed.route
    if route is None:
        _no_route(about, canary, managed)
        return
    where = f"{managed.name} {route.path}"
    target = fields.delegate(vs, route.index)
    if target is not None:
        about.add(
            "spec.service.route",
            f"cannot be managed: {where} delegates to VirtualService {target[0]}/{target[1]}, "
            "whose routes hold the weights; name that VirtualService in "
            "spec.service.virtualService (and virtualServiceNamespace)",
        )
        return
    if service.route is None and route.has_match:
        about.add(
            "spec.service.route",
            f"{where} is the first route that sends only to {service.host}, but it has a match, "
            "so only matching requests would move; name the route to manage",
        )
    _check_destinations(about, canary, managed, where, route)
    _check_reachable(about, managed, where, route)


def _check_mesh_hosts(about: About, managed: Managed) -> None:
    """A VirtualService for sidecars alone applies only to requests for its own hosts."""
    assert managed.placed is not None
    if fields.gateway_names(managed.placed.obj) != [mesh.MESH_GATEWAY]:
        return
    written = mesh.hosts(managed.placed.obj)
    namespace = managed.key[0]
    if any(mesh.names_match(mesh.fqdn(host, namespace), managed.service) for host in written):
        return
    about.add(
        "spec.service.host",
        f"{managed.name} is bound to the mesh alone, and its spec.hosts "
        f"({', '.join(written) or 'none'}) do not include {managed.service}, so no request for "
        "the service reaches its routes",
    )


def _no_route(about: About, canary: Canary, managed: Managed) -> None:
    assert managed.placed is not None
    vs = managed.placed.obj
    routes = mesh.http_routes(vs)
    delegates = [r for r in routes if fields.delegate(vs, r.index) is not None]
    streams = [
        section
        for section, hosts in fields.stream_hosts(vs).items()
        if any(mesh.fqdn(host, managed.key[0]) == managed.service for host in hosts)
    ]
    name = canary.spec.service.route
    if name is None and delegates:
        first = delegates[0]
        target = fields.delegate(vs, first.index)
        assert target is not None
        message = (
            f"cannot be managed: {managed.name} is a delegate root ({first.path} delegates to "
            f"VirtualService {target[0]}/{target[1]}); name the delegate VirtualService, whose "
            "routes hold the weights, in spec.service.virtualService"
        )
    elif name is None and streams:
        message = (
            f"cannot be managed: {managed.name} reaches {managed.service} only by "
            f"{' and '.join(streams)} routes; a canary moves the weights of an http route"
        )
    elif name is not None:
        message = f'{managed.name} has no http route named "{name}" (routes: '
        message += f"{mesh.route_labels(routes)})"
    else:
        message = (
            f"{managed.name} has no http route whose destinations all point at "
            f"{canary.spec.service.host} (routes: {mesh.route_labels(routes)}); name the route "
            "to manage"
        )
        if managed.key[0] != model_key(canary)[0]:
            message += (
                f" (the service is {managed.service}; a short destination host is read in "
                f"{managed.key[0]}, so write it in full)"
            )
    about.add("spec.service.route", message)


def _check_destinations(
    about: About, canary: Canary, managed: Managed, where: str, route: mesh.Route
) -> None:
    spec = canary.spec
    ours = (spec.stable.subset, spec.canary.subset)
    for destination in route.destinations:
        if destination.host is None or (
            mesh.fqdn(destination.host, managed.key[0]) != managed.service
        ):
            about.add(
                "spec.service.host",
                f"{where}: {destination.path} sends to {destination.host or 'no host'}, not "
                f"{spec.service.host}; the managed route may only send to the canary's host",
            )
        elif destination.subset not in ours:
            about.add(
                "spec.service.route",
                f"{where}: {destination.path} sends to {destination.label}, which is neither the "
                f"stable ({ours[0]}) nor the canary ({ours[1]}) subset",
            )
    weights = [0 if d.weight is None else d.weight for d in route.destinations]
    if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in weights):
        about.add("spec.service.route", f"{where}: weights must be whole numbers >= 0")
    elif len(weights) > 1 and sum(weights) == 0:
        about.add(
            "spec.service.route",
            f"{where}: the weights total 0, which Istio refuses (weights are relative: any "
            "total but 0)",
        )
    if spec.stable.subset not in {d.subset for d in route.destinations}:
        sent = ", ".join(d.label for d in route.destinations) or "nothing"
        about.add(
            "spec.stable.subset",
            f"{where} has no destination for the stable subset {spec.stable.subset} "
            f"(it sends to: {sent})",
        )


def _check_reachable(about: About, managed: Managed, where: str, route: mesh.Route) -> None:
    """Istio's rule (pilot's analyzeUnreachableHTTPRules), asked of the managed route only."""
    assert managed.placed is not None
    vs = managed.placed.obj
    earlier: dict[str, str] = {}
    written: list[tuple[Any, str]] = []
    for before in mesh.http_routes(vs)[: route.index]:
        matches = fields.http_matches(vs, before.index)
        if not matches:
            reason = f"{before.label} before it has no match, so it takes every request"
            about.add("spec.service.route", f"{where} is unreachable: {reason}", code=UNREACHABLE)
            return
        for match in matches:
            earlier.setdefault(_match_key(match), before.label)
            written.append((match, before.label))
    mine = fields.http_matches(vs, route.index)
    if mine and all(_match_key(match) in earlier for match in mine):
        taken = sorted({earlier[_match_key(match)] for match in mine})
        about.add(
            "spec.service.route",
            f"{where} is unreachable: every one of its matches is used by an earlier route "
            f"({', '.join(taken)})",
            code=UNREACHABLE,
        )
        return
    covering = [_covering(match, written) for match in mine]
    if mine and all(covering):
        taken = sorted({label for label in covering if label})
        about.add(
            "spec.service.route",
            f"{where} is unreachable: every one of its matches is covered by an earlier route's "
            f"prefix match ({', '.join(taken)})",
            code=INEFFECTIVE,
        )


def _covering(match: Any, written: list[tuple[Any, str]]) -> str | None:
    """The earlier route that takes every request `match` takes, if there is one.

    Istio's prefix rule (coveredValidation) reports an earlier `uri.prefix` that starts the later
    match's as IST0131; it reads a missing method as GET, which would call a route reachable by
    POST unreachable, so here an earlier match covers only when each of its other conditions is
    in the later one too, unchanged: what is certain, not what Istio guesses.
    """
    if not isinstance(match, dict):
        return None
    uri = match.get("uri")
    later = uri.get("prefix", uri.get("exact")) if isinstance(uri, dict) else None
    if not isinstance(later, str):
        return None
    rest = {key: value for key, value in match.items() if key not in ("name", "uri")}
    # Ignoring case widens a match: only an earlier one that ignores it too can cover it.
    widened = rest.get("ignoreUriCase") is True
    for before, label in written:
        if not isinstance(before, dict):
            continue
        prefix = before.get("uri")
        prefix = prefix.get("prefix") if isinstance(prefix, dict) and len(prefix) == 1 else None
        if not isinstance(prefix, str) or not later.startswith(prefix):
            continue
        conditions = {k: v for k, v in before.items() if k not in ("name", "uri")}
        if widened and conditions.get("ignoreUriCase") is not True:
            continue
        if all(rest.get(key) == value for key, value in conditions.items()):
            return label
    return None


def _match_key(match: Any) -> str:
    """A match as Istio compares them: its JSON without its name."""
    if isinstance(match, dict):
        match = {key: value for key, value in match.items() if key != "name"}
    return json.dumps(match, sort_keys=True, default=str)
