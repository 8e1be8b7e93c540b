"""Check each Canary against the VirtualService, DestinationRule and MetricTemplates it names.

What `istioctl analyze` would say about the pair (a subset no DestinationRule defines, weights
that do not sum to 100), and what only a canary controller cares about (which route it manages,
whether stable and canary can both be reached). Pure functions of parsed objects; every finding
sits on the Canary's document and names both objects and the field of each.

Rules where a choice had to be made:
- Objects match by namespace (no namespace: `default`) and name (VirtualService and
  DestinationRule: as `spec.service` names them, default the host).
- What is not in the paths is assumed to live in the cluster: a missing VirtualService is a
  finding only if the paths hold at least one VirtualService, and likewise for DestinationRules
  and MetricTemplates. So a Canary can be checked alone, yet a misspelt name (or namespace) in a
  folder that has the objects is caught, with the names that were seen.
- The managed route is `spec.service.route` by name, else the first http route whose
  destinations (one at least) all point at the host. A default route with a `match` is a finding:
  only matching requests would move; name the route to say that is meant.
- The route must send to the stable subset; the canary subset may be absent (the controller adds
  it at weight 0). Any other destination (another host, a third subset, no subset) is a finding,
  since the controller only moves weight between the two subsets.
- With more than one destination the weights must sum to 100, a missing weight counting as 0
  (Istio's own rule, `total destination weight != 100`); a lone destination may omit it.
- The DestinationRule's host must be the Canary's; the stable subset must exist with labels;
  the canary subset too, unless `spec.canary.labels` is set and no route sends to it yet (the
  controller then adds it). Labels a Canary gives must include every label of the DestinationRule
  subset with the same value (equal or a superset): otherwise the subset may not select the pods
  the Canary means.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.api.spec import Variant
from canary.validation import mesh
from canary.validation.findings import Finding
from canary.validation.inventory import DEFAULT_NAMESPACE, Inventory, IstioObject, Placed, key_of

T = TypeVar("T")
Key = tuple[str, str]
_LISTED = 8


@dataclass(slots=True)
class Index:
    """The objects by (namespace, name); the first of two with the same key wins."""

    virtual_services: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    destination_rules: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    templates: dict[Key, Placed[MetricTemplate]] = field(default_factory=dict)

    @classmethod
    def of(cls, inventory: Inventory) -> Index:
        return cls(
            virtual_services=_first(inventory.virtual_services, _istio_key),
            destination_rules=_first(inventory.destination_rules, _istio_key),
            templates=_first(inventory.templates, lambda placed: _model_key(placed.obj)),
        )


class _Report:
    """Findings about one Canary, each naming it and the field of it that they concern."""

    def __init__(self, placed: Placed[Canary]) -> None:
        self.placed = placed
        namespace, name = _model_key(placed.obj)
        self.subject = f"Canary {namespace}/{name}"
        self.findings: list[Finding] = []

    def add(self, path: str, message: str) -> None:
        self.findings.append(Finding(self.placed.where, f"{self.subject} {path}", message))


def check(inventory: Inventory) -> list[Finding]:
    index = Index.of(inventory)
    found = duplicates(inventory) + shared_routes(inventory.canaries, index)
    for placed in inventory.canaries:
        found += check_canary(placed, index)
    return found


def check_canary(placed: Placed[Canary], index: Index) -> list[Finding]:
    report = _Report(placed)
    route = _check_virtual_service(report, index)
    _check_destination_rule(report, index, route)
    _check_templates(report, index)
    return report.findings


def managed_route(canary: Canary, index: Index) -> tuple[Key, mesh.Route | None, bool]:
    """The VirtualService key, the route the Canary manages in it, and if it was the default."""
    service = canary.spec.service
    key = (_model_key(canary)[0], service.virtual_service_name)
    placed = index.virtual_services.get(key)
    routes = mesh.http_routes(placed.obj) if placed else []
    if service.route is not None:
        return key, next((r for r in routes if r.name == service.route), None), False
    for route in routes:
        if route.destinations and all(
            d.host is not None and mesh.host_matches(d.host, key[0], service.host, key[0])
            for d in route.destinations
        ):
            return key, route, True
    return key, None, True


def shared_routes(canaries: list[Placed[Canary]], index: Index) -> list[Finding]:
    """Two Canaries moving the weights of one route would undo each other's steps."""
    groups: dict[tuple[str, str, str], list[Placed[Canary]]] = collections.defaultdict(list)
    for placed in canaries:
        key, route, _ = managed_route(placed.obj, index)
        label = route.label if route else repr(placed.obj.spec.service.route or "(default)")
        groups[(*key, label)].append(placed)
    found: list[Finding] = []
    for (namespace, name, label), group in groups.items():
        for placed in group if len(group) > 1 else []:
            others = ", ".join(
                f"Canary {'/'.join(_model_key(o.obj))} ({o.where})"
                for o in group
                if o is not placed
            )
            report = _Report(placed)
            report.add(
                "spec.service.route",
                f"VirtualService {namespace}/{name} route {label} is also managed by {others}",
            )
            found += report.findings
    return found


def duplicates(inventory: Inventory) -> list[Finding]:
    """A second object of the same kind, namespace and name would replace the first on apply."""
    found: list[Finding] = []
    for kind, keyed in (
        ("Canary", [(_model_key(p.obj), p) for p in inventory.canaries]),
        ("MetricTemplate", [(_model_key(p.obj), p) for p in inventory.templates]),
        ("VirtualService", [(_istio_key(p), p) for p in inventory.virtual_services]),
        ("DestinationRule", [(_istio_key(p), p) for p in inventory.destination_rules]),
    ):
        first: dict[Key, Placed[object]] = {}
        for key, placed in keyed:
            if key in first:
                message = f"{kind} {key[0]}/{key[1]} is defined again (first at {first[key].where})"
                found.append(Finding(placed.where, "metadata.name", message))
            else:
                first[key] = placed
    return found


def _check_virtual_service(report: _Report, index: Index) -> mesh.Route | None:
    service = report.placed.obj.spec.service
    key, route, by_default = managed_route(report.placed.obj, index)
    placed = index.virtual_services.get(key)
    if placed is None:
        if index.virtual_services:
            field_path = (
                "spec.service.virtualService" if service.virtual_service else "spec.service.host"
            )
            report.add(field_path, f"VirtualService {_missing(key, index.virtual_services)}")
        return None
    vs = f"VirtualService {key[0]}/{key[1]}"
    written = mesh.hosts(placed.obj)
    if not any(mesh.host_matches(h, key[0], service.host, key[0]) for h in written):
        report.add(
            "spec.service.host",
            f"{vs} spec.hosts ({', '.join(written) or 'none'}) do not include {service.host} "
            f"(read as {mesh.fqdn(service.host, key[0])} in namespace {key[0]})",
        )
    routes = mesh.http_routes(placed.obj)
    if route is None:
        if service.route is not None:
            report.add(
                "spec.service.route",
                f"{vs} has no http route named {service.route!r} "
                f"(routes: {mesh.route_labels(routes)})".replace("'", '"'),
            )
        else:
            report.add(
                "spec.service.route",
                f"{vs} has no http route whose destinations all point at {service.host} "
                f"(routes: {mesh.route_labels(routes)}); name the route to manage",
            )
        return None
    where = f"{vs} {route.path}"
    if by_default and route.has_match:
        report.add(
            "spec.service.route",
            f"{where} is the first route that sends only to {service.host}, but it has a match, "
            "so only matching requests would move; name the route to manage",
        )
    _check_route(report, key[0], where, route)
    return route


def _check_route(report: _Report, namespace: str, where: str, route: mesh.Route) -> None:
    spec = report.placed.obj.spec
    ours = (spec.stable.subset, spec.canary.subset)
    for destination in route.destinations:
        if destination.host is None or not mesh.host_matches(
            destination.host, namespace, spec.service.host, namespace
        ):
            report.add(
                "spec.service.host",
                f"{where}: {destination.path} sends to {destination.host or 'no host'}, not "
                f"{spec.service.host}; the managed route may only send to the canary's host",
            )
        elif destination.subset not in ours:
            report.add(
                "spec.service.route",
                f"{where}: {destination.path} sends to {destination.label}, which is neither the "
                f"stable ({ours[0]}) nor the canary ({ours[1]}) subset",
            )
    if len(route.destinations) > 1:
        weights = [d.weight if d.weight is not None else 0 for d in route.destinations]
        if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in weights):
            report.add("spec.service.route", f"{where}: weights must be whole numbers >= 0")
        elif sum(weights) != 100:
            split = ", ".join(
                f"{d.subset or d.host}: {w}"
                for d, w in zip(route.destinations, weights, strict=True)
            )
            report.add(
                "spec.service.route",
                f"{where}: weights sum to {sum(weights)}, not 100 ({split})",
            )
    sent = [d.subset for d in route.destinations]
    if spec.stable.subset not in sent:
        report.add(
            "spec.stable.subset",
            f"{where} has no destination for the stable subset {spec.stable.subset} (it sends to: "
            f"{', '.join(d.label for d in route.destinations) or 'nothing'})",
        )


def _check_destination_rule(report: _Report, index: Index, route: mesh.Route | None) -> None:
    spec = report.placed.obj.spec
    key = (_model_key(report.placed.obj)[0], spec.service.destination_rule_name)
    placed = index.destination_rules.get(key)
    if placed is None:
        if index.destination_rules:
            field_path = (
                "spec.service.destinationRule"
                if spec.service.destination_rule
                else "spec.service.host"
            )
            report.add(field_path, f"DestinationRule {_missing(key, index.destination_rules)}")
        return
    dr = f"DestinationRule {key[0]}/{key[1]}"
    host = mesh.destination_host(placed.obj)
    if host is None or not mesh.host_matches(host, key[0], spec.service.host, key[0]):
        report.add(
            "spec.service.host", f"{dr} spec.host is {host or 'missing'}, not {spec.service.host}"
        )
    subsets = mesh.subsets(placed.obj)
    listed = ", ".join(subsets) or "none"
    sent = {d.subset for d in route.destinations} if route else set()
    for role, variant in (("stable", spec.stable), ("canary", spec.canary)):
        labels = subsets.get(variant.subset)
        if labels is None:
            if role == "canary" and variant.labels and variant.subset not in sent:
                continue
            routed = f"; {route.label} sends to it" if variant.subset in sent and route else ""
            report.add(
                f"spec.{role}.subset",
                f"{dr} has no subset {variant.subset} (subsets: {listed}){routed}",
            )
        elif not labels:
            report.add(
                f"spec.{role}.subset",
                f"{dr} subset {variant.subset} has no labels, so it selects every pod of the host",
            )
        else:
            _check_labels(
                report, f"spec.{role}.labels", variant, f"{dr} subset {variant.subset}", labels
            )
    stable, canary = subsets.get(spec.stable.subset), subsets.get(spec.canary.subset)
    if stable and stable == canary:
        report.add(
            "spec.canary.subset",
            f"{dr} subsets {spec.stable.subset} and {spec.canary.subset} have the same labels, "
            "so both select the same pods",
        )


def _check_labels(
    report: _Report, path: str, variant: Variant, subset: str, labels: dict[str, str]
) -> None:
    if variant.labels is None:
        return
    for name, value in sorted(labels.items()):
        given = variant.labels.get(name)
        if given is None:
            report.add(path, f"has no {name}, but {subset} selects {name}={value}")
        elif given != value:
            report.add(f"{path}.{name}", f"is {given}, but {subset} selects {name}={value}")


def _check_templates(report: _Report, index: Index) -> None:
    canary = report.placed.obj
    for position, metric in enumerate(canary.spec.analysis.metrics):
        ref = metric.template_ref
        if ref is None:
            continue
        path = f"spec.analysis.metrics[{position}]"
        key = (ref.namespace or _model_key(canary)[0], ref.name)
        placed = index.templates.get(key)
        if placed is None:
            if index.templates:
                report.add(
                    f"{path}.templateRef", f"MetricTemplate {_missing(key, index.templates)}"
                )
            continue
        template = f"MetricTemplate {key[0]}/{key[1]}"
        needed = placed.obj.spec.custom_variables() - metric.template_variables.keys()
        if needed:
            given = ", ".join(sorted(metric.template_variables)) or "none"
            report.add(
                f"{path}.templateVariables",
                f"{template} needs {', '.join(sorted(needed))} (its queries use "
                f"{' '.join('{{ ' + name + ' }}' for name in sorted(needed))}); given: {given}",
            )
        if metric.min_requests is not None and placed.obj.spec.requests_query is None:
            report.add(
                f"{path}.minRequests",
                f"{template} has no requestsQuery, so the request count is never known and the "
                "guard could never pass; add a requestsQuery to the template or drop minRequests",
            )


def _missing(key: Key, seen: dict[Key, Placed[T]]) -> str:
    """`ns/name not found`, with the names that were seen, so a typo shows next to the right one."""
    here = sorted(name for namespace, name in seen if namespace == key[0])
    if here:
        others = f"in {key[0]}: {_some(here)}"
    else:
        others = f"none in {key[0]}; seen: {_some(sorted(f'{n}/{m}' for n, m in seen))}"
    return f"{key[0]}/{key[1]} not found ({others})"


def _some(names: list[str]) -> str:
    extra = len(names) - _LISTED
    return ", ".join(names[:_LISTED]) + (f" and {extra} more" if extra > 0 else "")


def _first(items: Iterable[Placed[T]], key: Callable[[Placed[T]], Key]) -> dict[Key, Placed[T]]:
    found: dict[Key, Placed[T]] = {}
    for item in items:
        found.setdefault(key(item), item)
    return found


def _istio_key(placed: Placed[IstioObject]) -> Key:
    return key_of(placed.obj)


def _model_key(obj: Canary | MetricTemplate) -> Key:
    return (obj.metadata.namespace or DEFAULT_NAMESPACE, obj.metadata.name)
