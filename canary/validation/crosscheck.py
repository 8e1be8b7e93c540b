"""Check each Canary against everything it touches in Istio, as Istio itself would join them.

What `istioctl analyze` would say about the objects a Canary manages (each finding naming the
analyzer code it matches: IST0101, IST0109, IST0112, IST0130, IST0131, IST0132, IST0145,
IST0162, IST0173, IST0174), and what only a canary controller cares about (which route it
manages, whether stable and canary can both be reached). Pure functions of parsed objects; every
finding sits on the Canary's document and names the other objects and the field of each. The
concerns live apart: `routes` (which route, and can it be managed), `gateways` (where it is
served, who else serves its hosts), `ingress` (whether traffic reaches those Gateways),
`targets` (hosts, ports, mirrors), `rules` (which DestinationRules apply), `hosts` (Services
and ServiceEntries, and the pods a subset selects); this module joins them and checks the
Canary's subsets against the rules that apply.

What is not in the paths is assumed to live in the cluster: a missing VirtualService, Gateway,
DestinationRule or Service is a finding only if the paths hold at least one of its kind. So a
Canary can be checked alone, yet a misspelt name in a folder that has the objects is caught,
with the names that were seen.

The DestinationRules are those istiod applies to the service for callers in the Canary's
namespace (`rules.applying`). A rule the Canary names (`destinationRule`,
`destinationRuleNamespace`) must be one of them: the controller adds subsets to the named one.
The stable subset must exist with labels, and the canary subset too, unless
`spec.canary.labels` is set and the route does not send to it yet (the controller then adds it).
Labels a Canary gives must hold every label of the subset with the same value (equal, or a
superset): otherwise the subset may not select the pods the Canary means.
"""

from __future__ import annotations

from typing import Any

from canary.api import istio as mesh
from canary.api.resources import Canary
from canary.api.spec import Variant
from canary.validation import (
    fields,
    gateways,
    hosts,
    ingress,
    mtls,
    people,
    routes,
    rules,
    targets,
    templates,
)
from canary.validation.findings import About, Finding
from canary.validation.inventory import Index, Key, Placed, istio_key, model_key, not_found

NOT_FOUND = "IST0101"


def check_canary(placed: Placed[Canary], index: Index) -> list[Finding]:
    namespace, name = model_key(placed.obj)
    about = About(placed.where, f"Canary {namespace}/{name}")
    managed = routes.find(placed.obj, index)
    routes.check(about, placed.obj, index, managed)
    if managed.placed is not None:
        gateways.check(about, routes.vs_path(placed.obj), index, managed.placed)
        ingress.check(about, routes.vs_path(placed.obj), index, managed.placed)
        if managed.route is not None:
            targets.check(about, index, managed.placed, managed.route, namespace)
    _check_destination_rule(about, placed.obj, index, managed)
    _check_port(about, placed.obj, index, managed.service)
    templates.check(about, placed.obj, index)
    people.check(about, placed.obj, index)
    mtls.check(about, placed.obj, index)
    return about.findings


def managed_route(canary: Canary, index: Index) -> tuple[Key, mesh.Route | None]:
    """The key of the Canary's VirtualService and the route it manages there, if found."""
    managed = routes.find(canary, index)
    return managed.key, managed.route


def _check_destination_rule(
    about: About, canary: Canary, index: Index, managed: routes.Managed
) -> None:
    spec = canary.spec
    caller = model_key(canary)[0]
    joined = rules.applying(index, managed.service, caller)
    named = spec.service.destination_rule is not None or (
        spec.service.destination_rule_namespace is not None
    )
    path = "spec.service.destinationRule" if named else "spec.service.host"
    if named:
        key = spec.service.destination_rule_key(caller)
        placed = index.destination_rules.get(key)
        if placed is None:
            if index.destination_rules:
                about.add(path, f"DestinationRule {not_found(key, index.destination_rules)}")
        elif not any(rule is placed for rule in joined.rules):
            about.add(path, _not_applied(placed, managed.service, caller, joined))
    elif not joined.rules and index.destination_rules:
        about.add(path, _none_applies(index, canary, managed.service, caller))
    if not joined.rules:
        return
    rules.check_duplicates(about, path, managed.service, joined)
    used = {
        f"spec.{role}.subset": v.subset
        for role, v in (("stable", spec.stable), ("canary", spec.canary))
    }
    hosts.check(about, path, index, joined, service=managed.service, caller=caller, subsets=used)
    _check_gateway_callers(about, path, index, managed, joined)
    dr = joined.names
    route = managed.route
    sent = {d.subset for d in route.destinations} if route else set()
    for role, variant in (("stable", spec.stable), ("canary", spec.canary)):
        found = joined.subsets.get(variant.subset)
        if found is None:
            if role == "canary" and variant.labels and variant.subset not in sent:
                continue
            routed = route is not None and variant.subset in sent
            about.add(
                f"spec.{role}.subset",
                f"{dr} has no subset {variant.subset} "
                f"(subsets: {', '.join(joined.subsets) or 'none'})"
                + (f"; {route.label} sends to it" if routed and route else ""),
                code=NOT_FOUND if routed else "",
            )
        elif not found[0]:
            about.add(
                f"spec.{role}.subset",
                f"{dr} subset {variant.subset} has no labels, so it selects every pod of the host",
            )
        else:
            _check_labels(about, f"spec.{role}.labels", variant, f"{dr} subset", found[0])
    _check_chaos(about, canary, dr, [rule.obj for rule in joined.rules])
    stable = joined.subsets.get(spec.stable.subset)
    canary_subset = joined.subsets.get(spec.canary.subset)
    if stable and stable[0] and canary_subset and stable[0] == canary_subset[0]:
        about.add(
            "spec.canary.subset",
            f"{dr} subsets {spec.stable.subset} and {spec.canary.subset} have the same labels, "
            "so both select the same pods",
        )


def _check_gateway_callers(
    about: About, path: str, index: Index, managed: routes.Managed, joined: rules.Joined
) -> None:
    """Through a Gateway the caller is its proxy, which joins rules from its own namespace (taken
    to be the Gateway's): a rule kept to the service's namespace gives it no subsets."""
    if managed.placed is None or managed.route is None:
        return
    sent = [d.subset for d in managed.route.destinations if d.subset in joined.subsets]
    seen: set[str] = set()
    for reference in fields.gateway_names(managed.placed.obj):
        if reference == mesh.MESH_GATEWAY:
            continue
        namespace, name = fields.gateway_key(reference, managed.key[0])
        if namespace in seen:
            continue
        seen.add(namespace)
        there = rules.applying(index, managed.service, namespace)
        missing = [subset for subset in dict.fromkeys(sent) if subset not in there.subsets]
        if missing:
            about.add(
                path,
                f"Gateway {namespace}/{name}'s proxies (taken to run in {namespace}) see "
                f"{there.names or 'no DestinationRule'} for {managed.service}, without "
                f"{'subsets' if len(missing) > 1 else 'subset'} {', '.join(missing)}: requests "
                f"through the gateway to {'them' if len(missing) > 1 else 'it'} fail; export "
                f"{joined.names} to {namespace} (exportTo)",
            )


def _check_port(about: About, canary: Canary, index: Index, service: str) -> None:
    port = canary.spec.service.port
    found = index.services_by_host.get(service)
    if port is None or found is None:
        return
    ports = fields.service_ports(found.obj)
    if port not in ports:
        listed = ", ".join(str(number) for number in ports) or "none"
        about.add(
            "spec.service.port",
            f"is {port}, but Service {'/'.join(istio_key(found))} has no such port "
            f"(ports: {listed})",
            code=NOT_FOUND,
        )


def _not_applied(
    placed: Placed[mesh.IstioObject], service: str, caller: str, joined: rules.Joined
) -> str:
    namespace, name = istio_key(placed)
    written = mesh.destination_host(placed.obj)
    if written is None or not mesh.names_match(mesh.fqdn(written, namespace), service):
        reason = f"its spec.host is {written or 'missing'}"
    elif not mesh.visible_in(placed.obj, namespace, caller):
        reason = f"its exportTo ({', '.join(mesh.export_to(placed.obj))}) leaves out {caller}"
    elif joined.rules:
        reason = f"{joined.names} take precedence"
    else:
        reason = "it is neither in the Canary's, the service's nor the root namespace"
    return (
        f"DestinationRule {namespace}/{name} is not a rule istiod applies to {service} for "
        f"callers in {caller}: {reason}"
    )


def _none_applies(index: Index, canary: Canary, service: str, caller: str) -> str:
    looked = list(dict.fromkeys([caller, mesh.service_namespace(service) or caller]))
    looked.append(mesh.ROOT_NAMESPACE)
    message = (
        f"no DestinationRule applies to {service} for callers in {caller} "
        f"(looked in {', '.join(dict.fromkeys(looked))})"
    )
    default = index.destination_rules.get(canary.spec.service.destination_rule_key(caller))
    if default is not None:
        namespace, name = istio_key(default)
        written = mesh.destination_host(default.obj)
        message += f"; DestinationRule {namespace}/{name} is for {written or 'no host'}"
    return message


def _check_chaos(about: About, canary: Canary, dr: str, applying: list[mesh.IstioObject]) -> None:
    """An experiment that expects what the DestinationRules cannot do would always fail."""
    if not canary.spec.chaos:
        return
    policies: list[Any] = []
    for rule in applying:
        policies.append(mesh.traffic_policy(rule))
        for subset in mesh.subset_entries(rule):
            if subset["name"] == canary.spec.canary.subset:
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
