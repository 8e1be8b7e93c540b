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

from collections.abc import Mapping, Sequence
from typing import Any

from canary.api import istio
from canary.localmesh.pilot import clusters, fields, http, match, routes
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
) -> EnvoyResources:
    """Envoy config for the one client sidecar in `namespace`, for services on `port`.

    Raises TranslationError listing every field that cannot be expressed.
    """
    problems: list[str] = []
    client = match.Client(namespace=namespace, port=port)
    services: dict[str, list[Workload]] = {}
    for workload in workloads:
        services.setdefault(workload.fqdn, []).append(workload)

    rules: dict[str, clusters.Rule] = {}
    owners: dict[str, str] = {}  # which object claimed a host, for messages about a second one
    for body in destination_rules:
        report, rule_namespace, spec = _open(body, "DestinationRule", client, problems)
        if spec is None:
            continue
        host = fields.get_str(report, spec, "host", "spec")
        fqdn = None if host is None else istio.fqdn(host, rule_namespace)
        if fqdn is None:
            report.invalid("spec.host", "missing")
        elif fqdn not in services:
            report.refuse("spec.host", f"no workload of the local mesh serves {host!r}")
        elif fqdn in rules:
            report.refuse("spec.host", f"{fqdn} already has {owners[fqdn]}")
        config = _config(body, "destination-rule", rule_namespace)
        rule = clusters.read_rule(report, spec, config=config, port=port)
        if fqdn in services and fqdn not in rules:
            rules[fqdn] = rule
            owners[fqdn] = report.subject

    owners.clear()
    routed: dict[str, list[Json]] = {}
    for body in virtual_services:
        report, vs_namespace, spec = _open(body, "VirtualService", client, problems)
        if spec is None:
            continue
        source = http.Source(
            name=str((body.get("metadata") or {}).get("name", "")),
            config=_config(body, "virtual-service", vs_namespace),
            client=client,
            resolve=_resolver(services, rules, vs_namespace, port),
        )

        def host_fqdn(host: str, vs_namespace: str = vs_namespace) -> str | None:
            fqdn = istio.fqdn(host, vs_namespace)
            return fqdn if fqdn in services else None

        read = routes.read_virtual_service(report, spec, source=source, host_fqdn=host_fqdn)
        for index, fqdn in read.hosts:
            if fqdn in owners:
                report.refuse(f"spec.hosts[{index}]", f"{fqdn} is already routed by {owners[fqdn]}")
            else:
                owners[fqdn] = report.subject
                routed[fqdn] = read.routes

    if problems:
        raise TranslationError(tuple(problems))
    virtual_hosts = [
        routes.virtual_host(
            fqdn, client=client, routes=routed.get(fqdn) or [routes.default_route(fqdn, port)]
        )
        for fqdn in sorted(services)
    ]
    return EnvoyResources(
        route_configuration=routes.route_configuration(port, virtual_hosts),
        clusters=[
            cluster
            for fqdn in sorted(services)
            for cluster in clusters.service_clusters(
                fqdn, port=port, workloads=services[fqdn], rule=rules.get(fqdn)
            )
        ],
    )


def _open(
    body: Mapping[str, Any], kind: str, client: match.Client, problems: list[str]
) -> tuple[Report, str, Mapping[str, Any] | None]:
    """The object's report (sharing `problems`), namespace and spec; no spec if it is unusable."""
    meta = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    name, namespace = meta.get("name"), meta.get("namespace") or client.namespace
    report = Report(f"{kind} {namespace}/{name}", problems)
    if body.get("kind") != kind:
        report.invalid("kind", f"expected {kind}, got {body.get('kind')!r}")
        return report, namespace, None
    api_version = body.get("apiVersion")
    if not (isinstance(api_version, str) and api_version.startswith("networking.istio.io/")):
        report.invalid("apiVersion", f"expected networking.istio.io/..., got {api_version!r}")
    if not isinstance(name, str) or not name:
        report.invalid("metadata.name", "missing")
    fields.check_keys(report, body, "", supported=_ENVELOPE)
    spec = fields.get_map(report, body, "spec", "") if "spec" in body else None
    if spec is None:
        report.invalid("spec", "missing")
        return report, namespace, None
    _check_visible(report, spec, namespace, client)
    return report, namespace, spec


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


def _config(body: Mapping[str, Any], kind: str, namespace: str) -> str:
    """istiod's `istio.config` metadata: the path of the object a route or cluster came from."""
    api_version = body.get("apiVersion") or "networking.istio.io/v1"
    name = (body.get("metadata") or {}).get("name", "")
    return f"/apis/{api_version}/namespaces/{namespace}/{kind}/{name}"
