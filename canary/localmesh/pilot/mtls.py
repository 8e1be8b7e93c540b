"""mTLS between the local mesh's Envoys, written as istiod writes it for sidecars.

Client side (`core/cluster_tls.go`): a cluster whose DestinationRule says `ISTIO_MUTUAL` gets a
TLS transport socket with the caller's workload certificate, the mesh root as its trust, the
server's SPIFFE identities (the service's service accounts) as the only names it accepts, SNI
`outbound_.<port>_.<subset>_.<host>` and Istio's in-mesh ALPN; `DISABLE` gets none. A cluster
with no `tls` is auto mTLS: istiod adds the same socket as a transport socket match for
endpoints labelled `tlsMode: istio` (a sidecar's) and plaintext for the rest, unless the
service namespace's PeerAuthentication is DISABLE. istiod hands the certificates over SDS from
the agent; the local mesh has no agent, so they are files, which is the one difference in the
config (and why no parity case can run ISTIO_MUTUAL through a stock Envoy fed by istiod).

Server side (`core/filterchain_options.go`, the HTTP port's options): STRICT is one filter chain
for TLS that requires a client certificate signed by the mesh root; PERMISSIVE adds a plaintext
chain, the TLS chain then matching Istio's mTLS ALPNs, and a TLS inspector tells them apart;
DISABLE is one plaintext chain. A connection no chain matches is closed (Envoy counts it in
`listener.<address>.no_filter_chain_match`), which is how STRICT refuses plaintext.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from canary.localmesh.certs import Issued

Json = dict[str, Any]

_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
# istiod's ALPNInMesh (no metadata exchange and no istio.alpn filter, as a vanilla Envoy runs
# it: that filter would put istio-http/1.1 on the wire) and allIstioMtlsALPNs.
IN_MESH_ALPN = ("istio",)
ISTIO_MTLS_ALPNS = ("istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2")
ISTIO_MUTUAL = "ISTIO_MUTUAL"
# istiod's inbound cipher suites (authn/utils SupportedCiphers) and TLS versions (1.2 to 1.3).
INBOUND_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
)
_VERSIONS = {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"}
TLS_INSPECTOR: Json = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3"
        ".TlsInspector"
    },
}


@dataclass(frozen=True, slots=True)
class MeshTls:
    """What the client side needs for mTLS: its certificate, and auto mTLS's inputs."""

    identity: Issued
    # MeshConfig.enableAutoMtls; istiod's default is on.
    auto_mtls: bool = True
    # The service namespace's PeerAuthentications, read for auto mTLS (namespace or mesh level).
    peer_authentications: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    root_namespace: str = "istio-system"


def sni(cluster_name: str) -> str:
    """istiod's SNI for a cluster `outbound|80|v1|host`: `outbound_.80_.v1_.host`."""
    return "_.".join(cluster_name.split("|"))


def upstream_socket(identity: Issued, *, sans: Sequence[str], sni: str) -> Json:
    """The ISTIO_MUTUAL transport socket that names the server `sni`."""
    validation: Json = {"trusted_ca": {"filename": str(identity.root)}}
    if sans:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "URI", "matcher": {"exact": san}} for san in sans
        ]
    context = {
        "@type": f"{_TLS}.UpstreamTlsContext",
        "common_tls_context": {
            "tls_params": dict(_VERSIONS),
            "tls_certificates": [_certificate(identity)],
            "validation_context": validation,
            "alpn_protocols": list(IN_MESH_ALPN),
        },
        "sni": sni,
    }
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def auto_mtls_matches(socket: Json) -> list[Json]:
    """istiod's transport socket matches of auto mTLS: mTLS to sidecars, plaintext otherwise."""
    return [
        {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": socket},
        {
            "name": "tlsMode-disabled",
            "match": {},
            "transport_socket": {
                "name": "envoy.transport_sockets.raw_buffer",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer"
                    ".v3.RawBuffer"
                },
            },
        },
    ]


def sidecar_endpoint_metadata() -> Json:
    """What marks an endpoint as having a sidecar, for auto mTLS's transport socket match."""
    return {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}


def inbound_chains(mode: str, filters: list[Json], identity: Issued | None) -> Json:
    """The inbound listener's `filter_chains` and `listener_filters` for a PeerAuthentication mode.

    Raises ValueError for STRICT or PERMISSIVE without an identity, or an unknown mode.
    """
    if mode == "DISABLE":
        return {"filter_chains": [{"filters": filters}]}
    if mode not in ("STRICT", "PERMISSIVE"):
        raise ValueError(f"unknown mTLS mode {mode!r} (STRICT, PERMISSIVE or DISABLE)")
    if identity is None:
        raise ValueError(f"{mode} needs the workload's certificate")
    tls_chain: Json = {
        "filter_chain_match": {"transport_protocol": "tls"},
        "filters": filters,
        "transport_socket": _downstream_socket(identity),
        "name": "inbound-mtls",
    }
    chains = [tls_chain]
    if mode == "PERMISSIVE":
        tls_chain["filter_chain_match"]["application_protocols"] = list(ISTIO_MTLS_ALPNS)
        chains.append(
            {
                "filter_chain_match": {"transport_protocol": "raw_buffer"},
                "filters": filters,
                "name": "inbound-plaintext",
            }
        )
    return {"filter_chains": chains, "listener_filters": [TLS_INSPECTOR]}


def _downstream_socket(identity: Issued) -> Json:
    context = {
        "@type": f"{_TLS}.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_params": {**_VERSIONS, "cipher_suites": list(INBOUND_CIPHERS)},
            "tls_certificates": [_certificate(identity)],
            # Any identity from the mesh root: istiod checks none on the inbound side either
            # (authorization, not authentication, says who may call).
            "validation_context": {"trusted_ca": {"filename": str(identity.root)}},
            "alpn_protocols": ["h2", "http/1.1"],
        },
    }
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _certificate(identity: Issued) -> Json:
    return {
        "certificate_chain": {"filename": str(identity.cert_chain)},
        "private_key": {"filename": str(identity.private_key)},
    }
