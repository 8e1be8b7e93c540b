"""The Pilot's vocabulary: workloads in, Envoy resources out, and the refusal that lists why not.

Names follow istiod so that what a user sees in Envoy's config dump or stats here is what they
would see in a cluster: clusters are `outbound|<port>|<subset>|<host FQDN>`, the outbound route
configuration is named after the port, and hosts are Kubernetes FQDNs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.api import istio

Json = dict[str, Any]

ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
FAULT_FILTER = "envoy.filters.http.fault"
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

# istiod's mesh default (MeshConfig.connectTimeout) for clusters without a connectionPool.tcp.
DEFAULT_CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True, slots=True)
class Workload:
    """One endpoint of a service: in the demo, one instance's inbound Envoy."""

    name: str
    namespace: str
    # The service's short host name ("demo"); its FQDN is host.namespace.svc.cluster.local.
    host: str
    labels: Mapping[str, str]
    address: str
    port: int
    # Its SPIFFE identity (spiffe://cluster.local/ns/<ns>/sa/<sa>); "" without mTLS.
    spiffe_id: str = ""

    @property
    def fqdn(self) -> str:
        return istio.fqdn(self.host, self.namespace)


@dataclass(frozen=True, slots=True)
class EnvoyResources:
    """What one translation produces: the outbound RouteConfiguration and its clusters.

    Both are protobuf JSON with `@type`, ready for a filesystem xDS file.
    """

    route_configuration: Json
    clusters: list[Json]

    @property
    def route_name(self) -> str:
        return str(self.route_configuration["name"])

    def cluster(self, name: str) -> Json:
        """The cluster called `name` (KeyError if absent): a convenience for tests and tools."""
        for cluster in self.clusters:
            if cluster["name"] == name:
                return cluster
        raise KeyError(name)

    def virtual_host(self, host: str) -> Json:
        """The virtual host that serves `host` (any of its domains), KeyError if none does."""
        for virtual_host in self.route_configuration["virtual_hosts"]:
            if host in virtual_host["domains"]:
                return dict(virtual_host)
        raise KeyError(host)


class TranslationError(ValueError):
    """Objects the Pilot cannot express; `problems` names each field, one problem per line."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def cluster_name(fqdn: str, port: int, subset: str = "") -> str:
    return f"outbound|{port}|{subset}|{fqdn}"
