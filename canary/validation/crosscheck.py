"""Check each Canary against the VirtualService, DestinationRule and MetricTemplates it names.

What `istioctl analyze` would say about the pair (a subset no DestinationRule defines, weights
that do not sum to 100), and what only a canary controller cares about (which route it manages,
whether stable and canary can both be reached). Pure functions of parsed objects; every finding
sits on the Canary's document and names both objects and the field of each.

Rules where a choice had to be made:
- Objects match by namespace (none: `default`) and name (`spec.service.virtualService` and
  `destinationRule`, default the host).
- What is not in the paths is assumed to live in the cluster: a missing VirtualService is a
  finding only if the paths hold at least one VirtualService, and the same for
  DestinationRules. So a Canary can be checked alone, yet a misspelt name (or namespace) in a
  folder that has the objects is caught, with the names that were seen.
- The managed route is `spec.service.route` by name, else the first http route whose
  destinations (one at least) all point at the host. A default route with a `match` is a
  finding: only matching requests would move; naming the route says that is meant.
- The route must send to the stable subset; the canary subset may be absent (the controller adds
  it at weight 0). Any other destination (another host, a third subset, no subset) is a finding,
  since the controller only moves weight between the two subsets.
- With more than one destination the weights must sum to 100, a missing weight counting as 0
  (Istio's own rule, "total destination weight != 100"); a lone destination may omit it.
- The DestinationRule's host must be the Canary's; the stable subset must exist with labels, and
  the canary subset too, unless `spec.canary.labels` is set and the route does not send to it
  yet (the controller then adds it). Labels a Canary gives must hold every label of the
  DestinationRule's subset with the same value (equal, or a superset): otherwise the subset
  may not select the pods the Canary means.
"""

from __future__ import annotations

from typing import Any

from canary.api import istio as mesh
from canary.api.resources import Canary
from canary.api.spec import Variant
from canary.validation import people, templates
from canary.validation.findings import About, Finding
from canary.validation.inventory import Index, Key, Placed, model_key, not_found


def check_canary(placed: Placed[Canary], index: Index) -> list[Finding]:
    namespace, name = model_key(placed.obj)
    about = About(placed.where, f"Canary {namespace}/{name}")
    route = _check_virtual_service(about, placed.obj, index)
    _check_destination_rule(about, placed.obj, index, route)
    templates.check(about, placed.obj, index)
    people.check(about, placed.obj, index)
    return about.findings


def managed_route(canary: Canary, index: Index) -> tuple[Key, mesh.Route | None]:
    """The key of the Canary's VirtualService and the route it manages there, if found."""
    service = canary.spec.service
    key = (model_key(canary)[0], service.virtual_service_name)
    placed = index.virtual_services.get(key)
    routes = mesh.http_routes(placed.obj) if placed else []
    route = mesh.select_route(routes, name=service.route, host=service.host, namespace=key[0])
    return key, route


def _check_virtual_service(about: About, canary: Canary, index: Index) -> mesh.Route | None:
    service = canary.spec.service
    key, route = managed_route(canary, index)
    placed = index.virtual_services.get(key)
    if placed is None:
        if index.virtual_services:
            path = "spec.service.virtualService" if service.virtual_service else "spec.service.host"
            about.add(path, f"VirtualService {not_found(key, index.virtual_services)}")
        return None
    vs = f"VirtualService {key[0]}/{key[1]}"
    written = mesh.hosts(placed.obj)
    if not any(mesh.host_matches(h, key[0], service.host, key[0]) for h in written):
        about.add(
            "spec.service.host",
            f"{vs} spec.hosts ({', '.join(written) or 'none'}) do not include {service.host} "
            f"(read as {mesh.fqdn(service.host, key[0])} in namespace {key[0]})",
        )
    if route is None:
        routes = mesh.route_labels(mesh.http_routes(placed.obj))
        if service.route is not None:
            message = f'{vs} has no http route named "{service.route}" (routes: {routes})'
        else:
            message = (
                f"{vs} has no http route whose destinations all point at {service.host} "
                f"(routes: {routes}); name the route to manage"
            )
        about.add("spec.service.route", message)
        return None
    where = f"{vs} {route.path}"
    if service.route is None and route.has_match:
        about.add(
            "spec.service.route",
            f"{where} is the first route that sends only to {service.host}, but it has a match, "
            "so only matching requests would move; name the route to manage",
        )
    _check_route(about, canary, key[0], where, route)
    return route


def _check_route(
    about: About, canary: Canary, namespace: str, where: str, route: mesh.Route
) -> None:
    spec = canary.spec
    ours = (spec.stable.subset, spec.canary.subset)
    for destination in route.destinations:
        if destination.host is None or not mesh.host_matches(
            destination.host, namespace, spec.service.host, namespace
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
    if len(route.destinations) > 1:
        weights = [0 if d.weight is None else d.weight for d in route.destinations]
        if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in weights):
            about.add("spec.service.route", f"{where}: weights must be whole numbers >= 0")
        elif sum(weights) != 100:
            split = ", ".join(
                f"{d.subset or d.host}: {w}"
                for d, w in zip(route.destinations, weights, strict=True)
            )
            about.add(
                "spec.service.route", f"{where}: weights sum to {sum(weights)}, not 100 ({split})"
            )
    if spec.stable.subset not in {d.subset for d in route.destinations}:
        sent = ", ".join(d.label for d in route.destinations) or "nothing"
        about.add(
            "spec.stable.subset",
            f"{where} has no destination for the stable subset {spec.stable.subset} "
            f"(it sends to: {sent})",
        )


def _check_destination_rule(
    about: About, canary: Canary, index: Index, route: mesh.Route | None
) -> None:
    spec = canary.spec
    key = (model_key(canary)[0], spec.service.destination_rule_name)
    placed = index.destination_rules.get(key)
    if placed is None:
        if index.destination_rules:
            named = spec.service.destination_rule
            path = "spec.service.destinationRule" if named else "spec.service.host"
            about.add(path, f"DestinationRule {not_found(key, index.destination_rules)}")
        return
    dr = f"DestinationRule {key[0]}/{key[1]}"
    host = mesh.destination_host(placed.obj)
    if host is None or not mesh.host_matches(host, key[0], spec.service.host, key[0]):
        about.add(
            "spec.service.host",
            f"{dr} spec.host is {host or 'missing'}, not {spec.service.host}",
        )
    subsets = mesh.subsets(placed.obj)
    sent = {d.subset for d in route.destinations} if route else set()
    for role, variant in (("stable", spec.stable), ("canary", spec.canary)):
        labels = subsets.get(variant.subset)
        if labels is None:
            if role == "canary" and variant.labels and variant.subset not in sent:
                continue
            routed = f"; {route.label} sends to it" if route and variant.subset in sent else ""
            about.add(
                f"spec.{role}.subset",
                f"{dr} has no subset {variant.subset} (subsets: {', '.join(subsets) or 'none'})"
                f"{routed}",
            )
        elif not labels:
            about.add(
                f"spec.{role}.subset",
                f"{dr} subset {variant.subset} has no labels, so it selects every pod of the host",
            )
        else:
            _check_labels(about, f"spec.{role}.labels", variant, f"{dr} subset", labels)
    _check_chaos(about, canary, dr, placed.obj)
    stable, canary_labels = subsets.get(spec.stable.subset), subsets.get(spec.canary.subset)
    if stable and stable == canary_labels:
        about.add(
            "spec.canary.subset",
            f"{dr} subsets {spec.stable.subset} and {spec.canary.subset} have the same labels, "
            "so both select the same pods",
        )


def _check_chaos(about: About, canary: Canary, dr: str, rule: dict[str, Any]) -> None:
    """An experiment that expects what the DestinationRule cannot do would always fail."""
    if not canary.spec.chaos:
        return
    found = rule.get("spec")
    spec: dict[str, Any] = found if isinstance(found, dict) else {}
    policies = [spec.get("trafficPolicy")]
    for subset in spec.get("subsets") or []:
        if isinstance(subset, dict) and subset.get("name") == canary.spec.canary.subset:
            policies.append(subset.get("trafficPolicy"))
    has = {
        field: any(isinstance(p, dict) and p.get(field) for p in policies)
        for field in ("outlierDetection", "connectionPool")
    }
    where = f"{dr} (its trafficPolicy or subset {canary.spec.canary.subset}'s)"
    for index, experiment in enumerate(canary.spec.chaos):
        if experiment.expect.ejection and not has["outlierDetection"]:
            about.add(
                f"spec.chaos[{index}].expect.ejection",
                f"{where} has no outlierDetection, so no canary host can be ejected and the "
                "experiment would always fail",
            )
        if experiment.expect.overflow and not has["connectionPool"]:
            about.add(
                f"spec.chaos[{index}].expect.overflow",
                f"{where} has no connectionPool, so no circuit breaker can shed load and the "
                "experiment would always fail",
            )


def _check_labels(
    about: About, path: str, variant: Variant, subset: str, labels: dict[str, str]
) -> None:
    if variant.labels is None:
        return
    for name, value in sorted(labels.items()):
        given = variant.labels.get(name)
        selects = f"{subset} {variant.subset} selects {name}={value}"
        if given is None:
            about.add(path, f"has no {name}, but {selects}")
        elif given != value:
            about.add(f"{path}.{name}", f"is {given}, but {selects}")
