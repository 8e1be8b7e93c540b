"""DestinationRules and workloads as Envoy clusters: one per service, plus one per subset.

As in istiod, every service gets its subset-less cluster `outbound|<port>||<fqdn>` (with the
DestinationRule's host-level policy, if there is a rule), and every subset of its rule gets
`outbound|<port>|<subset>|<fqdn>` with the subset's policy merged over the host's. A subset's
endpoints are the service's workloads whose labels include the subset's labels.

Clusters are STATIC, with the endpoints written into the cluster: the local mesh's workloads are
known when the Pilot starts and do not move, so EDS would add a moving part and nothing else.
A cluster's TLS follows the merged `tls.mode` and auto mTLS as `mtls.py` says; without the
mesh's certificates every cluster is plaintext, as with istiod's auto mTLS off.

A subset that selects no workload is still a cluster, with no endpoints: Envoy answers 503 to
traffic sent there, as it does in a cluster where a subset's pods are all gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canary.api import mtls as api_mtls
from canary.localmesh.pilot import fields, mtls, policy
from canary.localmesh.pilot.fields import Json, Report
from canary.localmesh.pilot.model import CLUSTER_TYPE, Workload, cluster_name

_RULE_KEYS = {"host", "trafficPolicy", "subsets", "exportTo"}
_RULE_REFUSED = {
    "workloadSelector": "the local mesh's one client Envoy has no workload labels to select on",
}


@dataclass(frozen=True, slots=True)
class Subset:
    name: str
    labels: Mapping[str, str]
    policy: policy.Policy | None


@dataclass(frozen=True, slots=True)
class Rule:
    """One DestinationRule as read: where it came from, the host-level policy, the subsets."""

    config: str  # istiod's `istio.config` metadata path
    policy: policy.Policy | None
    subsets: dict[str, Subset]


def read_rule(report: Report, spec: Mapping[str, Any], *, config: str, port: int) -> Rule:
    fields.check_keys(report, spec, "spec", supported=_RULE_KEYS, refused=_RULE_REFUSED)
    subsets: dict[str, Subset] = {}
    for index, entry in enumerate(fields.get_list(report, spec, "subsets", "spec") or []):
        path = f"spec.subsets[{index}]"
        found = fields.mapping(report, entry, path)
        if found is None:
            continue
        fields.check_keys(report, found, path, supported={"name", "labels", "trafficPolicy"})
        name = fields.get_str(report, found, "name", path)
        labels = fields.get_string_map(report, found, "labels", path) or {}
        subset_policy = policy.read(report, found, path, port=port)
        if not name:
            report.invalid(f"{path}.name", "a subset needs a name")
        elif name in subsets:
            report.invalid(f"{path}.name", f"subset {name!r} is defined twice")
        else:
            subsets[name] = Subset(name, labels, subset_policy)
    return Rule(config=config, policy=policy.read(report, spec, "spec", port=port), subsets=subsets)


def service_clusters(
    fqdn: str,
    *,
    port: int,
    workloads: Sequence[Workload],
    rule: Rule | None,
    mesh_tls: mtls.MeshTls | None = None,
) -> list[Json]:
    """The clusters of one service: its own, then one per subset of its rule, in rule order."""
    host_policy = (rule.policy if rule else None) or policy.Policy()
    metadata: Json = {"config": rule.config} if rule else {}
    sans = sorted({w.spiffe_id for w in workloads if w.spiffe_id})
    name = cluster_name(fqdn, port)
    out = [_cluster(name, workloads, host_policy, metadata)]
    _apply_tls(out[-1], host_policy.tls, workloads, mesh_tls, sans)
    for subset in rule.subsets.values() if rule else ():
        selected = [w for w in workloads if _selects(subset.labels, w.labels)]
        merged = host_policy.under(subset.policy)
        out.append(
            _cluster(
                cluster_name(fqdn, port, subset.name),
                selected,
                merged,
                {**metadata, "subset": subset.name},
            )
        )
        _apply_tls(out[-1], merged.tls, selected, mesh_tls, sans)
    return out


def tls_refusals(report: Report, rule: Rule, mesh_tls: mtls.MeshTls | None) -> None:
    """ISTIO_MUTUAL in a mesh started without certificates cannot be honoured: say where."""
    if mesh_tls is not None:
        return
    policies = [rule.policy, *(subset.policy for subset in rule.subsets.values())]
    for found in policies:
        if found is not None and found.tls == mtls.ISTIO_MUTUAL:
            report.refuse(
                f"{found.tls_path}.mode",
                "this local mesh was started without workload certificates",
            )


def _apply_tls(
    cluster: Json,
    mode: str | None,
    workloads: Sequence[Workload],
    mesh_tls: mtls.MeshTls | None,
    sans: list[str],
) -> None:
    if mesh_tls is None or mode == "DISABLE":
        return
    socket = mtls.upstream_socket(mesh_tls.identity, sans=sans, sni=mtls.sni(cluster["name"]))
    if mode == mtls.ISTIO_MUTUAL:
        cluster["transport_socket"] = socket
        return
    if not mesh_tls.auto_mtls or not workloads:
        return
    namespace = workloads[0].namespace
    server = api_mtls.namespace_mode(
        namespace, [dict(p) for p in mesh_tls.peer_authentications], mesh_tls.root_namespace
    )
    if server.mode == "DISABLE":
        return
    cluster["transport_socket_matches"] = mtls.auto_mtls_matches(socket)
    for entry in cluster["load_assignment"]["endpoints"]:
        for endpoint in entry["lb_endpoints"]:
            endpoint["metadata"] = mtls.sidecar_endpoint_metadata()


def _selects(wanted: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


def _cluster(
    name: str, workloads: Sequence[Workload], settings: policy.Policy, istio_metadata: Json
) -> Json:
    cluster: Json = {
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC",
        "common_lb_config": {},
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [_endpoint(w) for w in workloads]}] if workloads else [],
        },
    }
    cluster.update(settings.cluster_fields())
    if istio_metadata:
        cluster["metadata"] = {"filter_metadata": {"istio": istio_metadata}}
    return cluster


def _endpoint(workload: Workload) -> Json:
    return {
        "endpoint": {
            "address": {
                "socket_address": {"address": workload.address, "port_value": workload.port}
            },
            # Shown by the admin /clusters page and in outlier ejection events: which instance.
            "hostname": workload.name,
        }
    }
