"""The whole translation: VirtualServices, DestinationRules and workloads in, Envoy resources out.

This module owns the local mesh's service registry, which is simply the workloads: a host is a
service when some workload serves it. It reads each object's envelope (kind, name, namespace,
exportTo) and checks what spans objects: one VirtualService and one DestinationRule per host (a
second would be ignored by istiod with a warning, so it is refused), destinations that name a
known host, port and subset. Then it assembles the route configuration and the clusters.

Every problem in every object is collected before anything is raised, and nothing is returned
unless there are none: a translation either expresses everything it was given or is refused.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canary.api import istio
from canary.localmesh.pilot import clusters, fields, http, match, mtls, routes
from canary.localmesh.pilot.fields import Json, Report
from canary.localmesh.pilot.model import EnvoyResources, TranslationError, Workload, cluster_name

_ENVELOPE = {"apiVersion", "kind", "metadata", "spec", "status"}


def translate(
    virtual_services: Sequence[Mapping[str, Any]],
    destination_rules: Sequence[Mapping[str, Any]],
    workloads: Sequence[Workload],
    *,
    namespace: str = "default",
    port: int = 80,
    mesh_tls: mtls.MeshTls | None = None,
) -> EnvoyResources:
    """Envoy config for the one client sidecar in `namespace`, for services on `port`; with
    `mesh_tls`, its clusters speak mTLS as the rules and auto mTLS say.

    Raises TranslationError listing every field that cannot be expressed.
    """
    problems: list[str] = []
    client = match.Client(namespace=namespace, port=port)
    services = services_of(workloads)
    rules = _read_rules(destination_rules, services, client, problems, mesh_tls)
    routed = _read_virtual_services(virtual_services, services, rules, client, problems)
    if problems:
        raise TranslationError(tuple(problems))
    virtual_hosts = [
        routes.virtual_host(
            fqdn,
            client=client,
            # Each host gets its own copy: a VirtualService may name several.
            routes=copy.deepcopy(routed.get(fqdn) or [routes.default_route(fqdn, port)]),
        )
        for fqdn in sorted(services)
    ]
    return EnvoyResources(
        route_configuration=routes.route_configuration(port, virtual_hosts),
        clusters=[
            cluster
            for fqdn in sorted(services)
            for cluster in clusters.service_clusters(
                fqdn, port=port, workloads=services[fqdn], rule=rules.get(fqdn), mesh_tls=mesh_tls
            )
        ],
    )


@dataclass(frozen=True, slots=True)
class _Envelope:
    """What every Istio object has around its spec."""

    report: Report
    namespace: str
    name: str
    spec: Mapping[str, Any]
    config: str  # istiod's `istio.config` metadata: the path of the object


def _read_rules(
    bodies: Sequence[Mapping[str, Any]],
    services: Mapping[str, list[Workload]],
    client: match.Client,
    problems: list[str],
    mesh_tls: mtls.MeshTls | None,
) -> dict[str, clusters.Rule]:
    rules: dict[str, clusters.Rule] = {}
    owners: dict[str, str] = {}
    for body in bodies:
        envelope = _open(body, "DestinationRule", client, problems)
        if envelope is None:
            continue
        report, spec = envelope.report, envelope.spec
        host = fields.get_str(report, spec, "host", "spec")
        fqdn = None if host is None else istio.fqdn(host, envelope.namespace)
        if fqdn is None:
            report.invalid("spec.host", "missing")
        elif fqdn not in services:
            report.refuse("spec.host", f"no workload of the local mesh serves {host!r}")
        elif fqdn in rules:
            report.refuse("spec.host", f"{fqdn} already has {owners[fqdn]}")
        rule = clusters.read_rule(report, spec, config=envelope.config, port=client.port)
        clusters.tls_refusals(report, rule, mesh_tls)
        # A rule with problems is kept all the same, so that the routes naming its subsets are
        # not refused as well for the same cause.
        if fqdn is not None and fqdn in services and fqdn not in rules:
            rules[fqdn], owners[fqdn] = rule, report.subject
    return rules


def _read_virtual_services(
    bodies: Sequence[Mapping[str, Any]],
    services: Mapping[str, list[Workload]],
    rules: Mapping[str, clusters.Rule],
    client: match.Client,
    problems: list[str],
) -> dict[str, list[Json]]:
    """The routes of each service host that a VirtualService routes."""
    routed: dict[str, list[Json]] = {}
    owners: dict[str, str] = {}
    for body in bodies:
        if not routes.for_mesh(body):
            # Bound to gateways only: istiod gives it to no sidecar (gateway.py reads it).
            continue
        envelope = _open(body, "VirtualService", client, problems)
        if envelope is None:
            continue
        report, namespace = envelope.report, envelope.namespace
        source = http.Source(
            name=envelope.name,
            config=envelope.config,
            client=client,
            resolve=_resolver(services, rules, namespace, client.port),
        )

        def host_fqdn(host: str, namespace: str = namespace) -> str | None:
            fqdn = istio.fqdn(host, namespace)
            return fqdn if fqdn in services else None

        read = routes.read_virtual_service(
            report, envelope.spec, source=source, host_fqdn=host_fqdn
        )
        for index, fqdn in read.hosts:
            if fqdn in owners:
                report.refuse(f"spec.hosts[{index}]", f"{fqdn} is already routed by {owners[fqdn]}")
            else:
                owners[fqdn], routed[fqdn] = report.subject, read.routes
    return routed


def services_of(workloads: Sequence[Workload]) -> dict[str, list[Workload]]:
    """The registry: each service FQDN with the workloads that serve it."""
    services: dict[str, list[Workload]] = {}
    for workload in workloads:
        services.setdefault(workload.fqdn, []).append(workload)
    return services


def read_rules(
    bodies: Sequence[Mapping[str, Any]],
    services: Mapping[str, list[Workload]],
    client: match.Client,
    problems: list[str],
) -> dict[str, clusters.Rule]:
    """The DestinationRules by host FQDN, as `client` sees them (the gateway reads them too).

    The local gateway holds no workload certificate, so a rule that asks for ISTIO_MUTUAL is
    refused for it rather than written as plaintext."""
    return _read_rules(bodies, services, client, problems, None)


def open_object(
    body: Mapping[str, Any], kind: str, client: match.Client, problems: list[str]
) -> _Envelope | None:
    """An object's envelope as `client` sees it (exportTo), its report sharing `problems`."""
    return _open(body, kind, client, problems)


def resolver(
    services: Mapping[str, list[Workload]],
    rules: Mapping[str, clusters.Rule],
    namespace: str,
    port: int,
) -> http.Resolve:
    """Names the cluster of a destination written in `namespace`, for services on `port`."""
    return _resolver(services, rules, namespace, port)


def _open(
    body: Mapping[str, Any], kind: str, client: match.Client, problems: list[str]
) -> _Envelope | None:
    """The object's envelope, its report sharing `problems`; None if there is no usable spec."""
    found = body.get("metadata")
    meta: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    name, namespace = meta.get("name"), meta.get("namespace") or client.namespace
    report = Report(f"{kind} {namespace}/{name}", problems)
    if body.get("kind") != kind:
        report.invalid("kind", f"expected {kind}, got {body.get('kind')!r}")
        return None
    api_version = body.get("apiVersion")
    if not (isinstance(api_version, str) and api_version.startswith("networking.istio.io/")):
        report.invalid("apiVersion", f"expected networking.istio.io/..., got {api_version!r}")
        api_version = "networking.istio.io/v1"
    if not isinstance(name, str) or not name:
        report.invalid("metadata.name", "missing")
        name = ""
    # Only the spec carries routing; metadata and status are Kubernetes' business.
    fields.check_keys(report, body, "", supported=_ENVELOPE)
    spec = fields.get_map(report, body, "spec", "")
    if spec is None:
        if "spec" not in body:
            report.invalid("spec", "missing")
        return None
    _check_visible(report, spec, namespace, client)
    resource = "-".join(part.lower() for part in re.findall(r"[A-Z][a-z]*", kind))
    config = f"/apis/{api_version}/namespaces/{namespace}/{resource}/{name}"
    return _Envelope(report, namespace, name, spec, config)


def _check_visible(
    report: Report, spec: Mapping[str, Any], namespace: str, client: match.Client
) -> None:
    """An object not exported to the client's namespace would be ignored by istiod: refuse it."""
    export_to = fields.get_strings(report, spec, "exportTo", "spec")
    if not export_to:
        return
    visible = (
        "*" in export_to
        or client.namespace in export_to
        or ("." in export_to and namespace == client.namespace)
    )
    if not visible:
        report.refuse(
            "spec.exportTo", f"not exported to {client.namespace!r}, where the mesh's client runs"
        )


def _resolver(
    services: Mapping[str, list[Workload]],
    rules: Mapping[str, clusters.Rule],
    namespace: str,
    port: int,
) -> http.Resolve:
    def resolve(report: Report, destination: Mapping[str, Any], path: str) -> str | None:
        fields.check_keys(report, destination, path, supported={"host", "subset", "port"})
        host = fields.get_str(report, destination, "host", path)
        subset = fields.get_str(report, destination, "subset", path) or ""
        selector = fields.get_map(report, destination, "port", path)
        if selector is not None:
            fields.check_keys(report, selector, f"{path}.port", supported={"number"})
            number = fields.get_int(report, selector, "number", f"{path}.port", maximum=65535)
            if number is not None and number != port:
                report.refuse(f"{path}.port.number", f"the local mesh serves only port {port}")
        if not host:
            report.invalid(f"{path}.host", "missing")
            return None
        fqdn = istio.fqdn(host, namespace)
        if fqdn not in services:
            report.refuse(f"{path}.host", f"no workload of the local mesh serves {host!r}")
            return None
        if subset and subset not in (rules[fqdn].subsets if fqdn in rules else {}):
            report.invalid(
                f"{path}.subset", f"subset {subset!r} of {fqdn} is not defined by a DestinationRule"
            )
            return None
        return cluster_name(fqdn, port, subset)

    return resolve
