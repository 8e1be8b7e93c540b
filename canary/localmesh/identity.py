"""Workload identities for the local mesh, issued as Citadel issues them to sidecars.

Every instance of the service runs as the service's account (`spiffe://cluster.local/ns/<ns>/sa/
<service>`, a Deployment's pods sharing one ServiceAccount), and the client-side Envoy, which
stands for the callers' sidecars, as the load generator's own account. All are signed by one
fresh root in the mesh's work directory (`certs.LocalCA`), so a certificate from any other CA is
refused by every Envoy of the mesh. `accepts` says what an instance's inbound Envoy takes, by
the PeerAuthentications, as istiod would program its sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.api import mtls_settings
from canary.localmesh.certs import Issued, LocalCA, spiffe_id

CLIENT_ACCOUNT = "loadgen"


@dataclass(frozen=True, slots=True)
class Identities:
    """The certificate of the client side and of each instance (by name), and their identities."""

    root: Path
    client: Issued
    client_id: str
    instances: dict[str, Issued]
    service_id: str


def issue(ca: LocalCA, *, namespace: str, service: str, instances: Sequence[str]) -> Identities:
    service_id = spiffe_id(namespace, service)
    client_id = spiffe_id(namespace, CLIENT_ACCOUNT)
    return Identities(
        root=ca.root,
        client=ca.issue("client-side", uris=(client_id,)),
        client_id=client_id,
        instances={name: ca.issue(name, uris=(service_id,)) for name in instances},
        service_id=service_id,
    )


def accepts(
    namespace: str,
    labels: Mapping[str, str],
    peer_authentications: Sequence[dict[str, Any]],
    *,
    port: int,
) -> str:
    """What an instance with `labels` accepts on `port`, by the PeerAuthentications.

    `portLevelMtls` is keyed by the workload's port, which is the service port in the mesh.
    """
    modes = mtls_settings.server_modes(namespace, labels, peer_authentications)
    return next((m for m in modes if m.port == port), modes[0]).mode
