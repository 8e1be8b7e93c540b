"""What the paths hold: each object with the file and document it came from, and an index.

The cross-checks run on this, not on files, so they are plain functions of objects; the place
travels with each object only so that a finding can point back at the document to edit.
Objects are keyed by (namespace, name), a missing namespace being kubectl's `default`.

Istio joins objects by host, not by name, so the Index also keeps them by host, built once for
all Canaries: DestinationRules by (namespace, host), Services by their cluster name, and the
VirtualServices that route a host on the mesh or on a gateway. A check then looks up the few
objects that share its host, so 10,000 Canaries on one route cost 10,000 lookups, not 10,000 scans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from canary.api import istio as mesh
from canary.api.chat_provider import ChatProvider
from canary.api.istio import IstioObject
from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.validation import fields
from canary.validation.findings import Where

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Key = tuple[str, str]

DEFAULT_NAMESPACE = "default"
_LISTED = 8


@dataclass(frozen=True, slots=True)
class Placed(Generic[T_co]):
    where: Where
    obj: T_co


@dataclass(slots=True)
class Inventory:
    canaries: list[Placed[Canary]] = field(default_factory=list)
    templates: list[Placed[MetricTemplate]] = field(default_factory=list)
    chat_providers: list[Placed[ChatProvider]] = field(default_factory=list)
    virtual_services: list[Placed[IstioObject]] = field(default_factory=list)
    destination_rules: list[Placed[IstioObject]] = field(default_factory=list)
    gateways: list[Placed[IstioObject]] = field(default_factory=list)
    services: list[Placed[IstioObject]] = field(default_factory=list)
    service_entries: list[Placed[IstioObject]] = field(default_factory=list)
    # Pods and Deployments: read for the labels of the pods they run, nothing else.
    workloads: list[Placed[IstioObject]] = field(default_factory=list)
    peer_authentications: list[Placed[IstioObject]] = field(default_factory=list)


# (namespace, host as Istio resolves it in that namespace) and (gateway key, host).
HostKey = tuple[str, str]
GatewayHost = tuple[Key, str]
# A VirtualService on the mesh for one host: (exportTo scope, "*" for everywhere; host; it).
MeshRoute = tuple[str, str, Placed[IstioObject]]


@dataclass(slots=True)
class Index:
    """The objects by key; of two with the same key the first wins, as `duplicates` reports."""

    virtual_services: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    destination_rules: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    templates: dict[Key, Placed[MetricTemplate]] = field(default_factory=dict)
    chat_providers: dict[Key, Placed[ChatProvider]] = field(default_factory=dict)
    gateways: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    services: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    peer_authentications: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    service_entries: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    # The labels of each pod the paths hold or a Deployment would run, by namespace.
    pod_labels: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # Namespaces with a Pod or Deployment whose labels cannot be read: no "selects no pod" there.
    pods_unknown: set[str] = field(default_factory=set)
    # DestinationRules without a workload selector, in file order, by the host they resolve to;
    # wildcard hosts also by namespace alone, since a lookup must try each of them.
    rules_by_host: dict[HostKey, list[Placed[IstioObject]]] = field(default_factory=dict)
    wildcard_rules: dict[str, list[Placed[IstioObject]]] = field(default_factory=dict)
    services_by_host: dict[str, Placed[IstioObject]] = field(default_factory=dict)
    # VirtualServices bound to the mesh by host, each with its exportTo scope ("*": everywhere),
    # which decides with whom Istio's IST0109 groups it.
    mesh_routes: dict[str, list[MeshRoute]] = field(default_factory=dict)
    # The same entries with a wildcard host, and all of them: a wildcard matches other names.
    mesh_wildcards: list[MeshRoute] = field(default_factory=list)
    mesh_all: list[MeshRoute] = field(default_factory=list)
    # What a check works out once per object and reuses for every Canary that shares it.
    memo: dict[tuple[str, int], Any] = field(default_factory=dict)
    gateway_routes: dict[GatewayHost, list[Placed[IstioObject]]] = field(default_factory=dict)

    @classmethod
    def of(cls, inventory: Inventory) -> Index:
        index = cls(
            virtual_services=_first(inventory.virtual_services, istio_key),
            destination_rules=_first(inventory.destination_rules, istio_key),
            templates=_first(inventory.templates, lambda placed: model_key(placed.obj)),
            chat_providers=_first(inventory.chat_providers, lambda placed: model_key(placed.obj)),
            gateways=_first(inventory.gateways, istio_key),
            services=_first(inventory.services, istio_key),
            peer_authentications=_first(inventory.peer_authentications, istio_key),
            service_entries=_first(inventory.service_entries, istio_key),
        )
        for workload in inventory.workloads:
            labels = fields.pod_labels(workload.obj)
            if labels is None:
                index.pods_unknown.add(istio_key(workload)[0])
            else:
                index.pod_labels.setdefault(istio_key(workload)[0], []).append(labels)
        for key, rule in index.destination_rules.items():
            host = mesh.destination_host(rule.obj)
            if host is None or mesh.workload_selector(rule.obj):
                continue
            resolved = mesh.fqdn(host, key[0])
            index.rules_by_host.setdefault((key[0], resolved), []).append(rule)
            if resolved.startswith("*"):
                index.wildcard_rules.setdefault(key[0], []).append(rule)
        for (namespace, name), service in index.services.items():
            index.services_by_host[mesh.fqdn(name, namespace)] = service
        for key, placed in index.virtual_services.items():
            _add_routes(index, key[0], placed)
        return index


def _add_routes(index: Index, namespace: str, placed: Placed[IstioObject]) -> None:
    hosts = [mesh.fqdn(host, namespace) for host in mesh.hosts(placed.obj)]
    for reference in fields.gateway_names(placed.obj):
        if reference == mesh.MESH_GATEWAY:
            targets = mesh.export_to(placed.obj)
            scopes = (
                {"*"}
                if not targets or "*" in targets
                else {namespace if target == "." else target for target in targets}
            )
            for scope in scopes:
                for host in hosts:
                    entry = (scope, host, placed)
                    index.mesh_routes.setdefault(host, []).append(entry)
                    index.mesh_all.append(entry)
                    if host.startswith("*"):
                        index.mesh_wildcards.append(entry)
        else:
            gateway = fields.gateway_key(reference, namespace)
            for host in hosts:
                index.gateway_routes.setdefault((gateway, host), []).append(placed)


def model_key(obj: Canary | MetricTemplate | ChatProvider) -> Key:
    return (obj.metadata.namespace or DEFAULT_NAMESPACE, obj.metadata.name)


def istio_key(placed: Placed[IstioObject]) -> Key:
    metadata = placed.obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return namespace_of(metadata), str(name)


def namespace_of(metadata: Any) -> str:
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE


def not_found(key: Key, seen: Iterable[Key]) -> str:
    """`ns/name not found`, with the names that were seen, so a typo shows next to the right one."""
    seen = sorted(seen)
    here = [name for namespace, name in seen if namespace == key[0]]
    if here:
        others = f"in {key[0]}: {_some(here)}"
    else:
        others = f"none in {key[0]}; seen: {_some([f'{n}/{m}' for n, m in seen])}"
    return f"{key[0]}/{key[1]} not found ({others})"


def _some(names: list[str]) -> str:
    extra = len(names) - _LISTED
    return ", ".join(names[:_LISTED]) + (f" and {extra} more" if extra > 0 else "")


def _first(items: Iterable[Placed[T]], key: Callable[[Placed[T]], Key]) -> dict[Key, Placed[T]]:
    found: dict[Key, Placed[T]] = {}
    for item in items:
        found.setdefault(key(item), item)
    return found
