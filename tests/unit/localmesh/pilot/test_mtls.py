"""The local Pilot's mTLS: DestinationRule tls and auto mTLS into clusters, PeerAuthentication
modes into inbound filter chains, each as istiod writes them (`core/cluster_tls.go`,
`core/filterchain_options.go`); the files are never read here, only named."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from canary.localmesh import pilot
from canary.localmesh.certs import Issued
from canary.localmesh.pilot import mtls
from tests.unit.localmesh.pilot.objects import DEMO, cluster, demo_workloads, destination_rule

Json = dict[str, Any]
SPIFFE = "spiffe://cluster.local/ns/default/sa/demo"
IDENTITY = Issued(Path("/x/chain.pem"), Path("/x/key.pem"), Path("/x/root.pem"))


def _clusters(rule: Json | None, **tls: Any) -> dict[str, Json]:
    workloads = [dataclasses.replace(w, spiffe_id=SPIFFE) for w in demo_workloads("v1", "v2")]
    resources = pilot.translate(
        [],
        [rule] if rule else [],
        workloads,
        mesh_tls=pilot.MeshTls(identity=IDENTITY, **tls),
    )
    return {c["name"]: c for c in resources.clusters}


def _context(found: Json) -> Json:
    context: Json = found["transport_socket"]["typed_config"]
    return context


def test_istio_mutual_sends_the_workload_cert_and_checks_the_spiffe_identity() -> None:
    found = _clusters(destination_rule(trafficPolicy={"tls": {"mode": "ISTIO_MUTUAL"}}))
    context = _context(found[cluster("v2")])
    assert context["sni"] == f"outbound_.80_.v2_.{DEMO}"
    common = context["common_tls_context"]
    assert common["alpn_protocols"] == ["istio"]
    assert common["tls_certificates"] == [
        {
            "certificate_chain": {"filename": "/x/chain.pem"},
            "private_key": {"filename": "/x/key.pem"},
        }
    ]
    assert common["validation_context"] == {
        "trusted_ca": {"filename": "/x/root.pem"},
        "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": SPIFFE}}],
    }
    assert "transport_socket_matches" not in found[cluster("v2")]


def test_a_subsets_disable_overrides_the_hosts_istio_mutual() -> None:
    rule = destination_rule(trafficPolicy={"tls": {"mode": "ISTIO_MUTUAL"}})
    rule["spec"]["subsets"][1]["trafficPolicy"] = {"tls": {"mode": "DISABLE"}}
    found = _clusters(rule)
    assert "transport_socket" in found[cluster("v1")]
    assert "transport_socket" not in found[cluster("v2")]
    assert "transport_socket_matches" not in found[cluster("v2")]


def test_no_tls_is_auto_mtls_to_sidecar_endpoints() -> None:
    found = _clusters(destination_rule())
    v1 = found[cluster("v1")]
    assert "transport_socket" not in v1
    matches = v1["transport_socket_matches"]
    assert [m["name"] for m in matches] == ["tlsMode-istio", "tlsMode-disabled"]
    assert matches[0]["match"] == {"tlsMode": "istio"}
    endpoint = v1["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["metadata"] == {
        "filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}
    }


@pytest.mark.parametrize(
    ("tls", "auto"),
    [
        ({"auto_mtls": False}, False),
        (
            {
                "peer_authentications": [
                    {
                        "metadata": {"name": "default", "namespace": "default"},
                        "spec": {"mtls": {"mode": "DISABLE"}},
                    }
                ]
            },
            False,
        ),
        (
            {
                "peer_authentications": [
                    {
                        "metadata": {"name": "w", "namespace": "default"},
                        "spec": {
                            "selector": {"matchLabels": {"version": "v1"}},
                            "mtls": {"mode": "DISABLE"},
                        },
                    }
                ]
            },
            # Auto mTLS reads namespace and mesh policies only, never a workload's.
            True,
        ),
    ],
)
def test_auto_mtls_follows_the_mesh_config_and_the_namespace_policy(tls: Json, auto: bool) -> None:
    found = _clusters(None, **tls)
    assert ("transport_socket_matches" in found[cluster("", host=DEMO)]) is auto


def test_istio_mutual_without_the_meshs_certificates_is_refused_by_field() -> None:
    rule = destination_rule()
    rule["spec"]["subsets"][0]["trafficPolicy"] = {"tls": {"mode": "ISTIO_MUTUAL"}}
    with pytest.raises(pilot.TranslationError) as raised:
        pilot.translate([], [rule], demo_workloads("v1", "v2"))
    assert raised.value.problems == (
        "DestinationRule default/demo spec.subsets[0].trafficPolicy.tls.mode: not supported by "
        "the local mesh (this local mesh was started without workload certificates)",
    )


@pytest.mark.parametrize(
    ("mode", "chains", "inspected"),
    [
        ("STRICT", [{"transport_protocol": "tls"}], True),
        (
            "PERMISSIVE",
            [
                {"transport_protocol": "tls", "application_protocols": list(mtls.ISTIO_MTLS_ALPNS)},
                {"transport_protocol": "raw_buffer"},
            ],
            True,
        ),
        ("DISABLE", [None], False),
    ],
)
def test_inbound_chains_per_peer_authentication_mode(
    mode: str, chains: list[Json | None], inspected: bool
) -> None:
    found = mtls.inbound_chains(mode, [{"name": "hcm"}], IDENTITY)
    assert [c.get("filter_chain_match") for c in found["filter_chains"]] == chains
    assert ("listener_filters" in found) is inspected
    for chain in found["filter_chains"]:
        if "transport_socket" in chain:
            assert chain["transport_socket"]["typed_config"]["require_client_certificate"] is True


@pytest.mark.parametrize(("mode", "identity"), [("STRICT", None), ("MAYBE", IDENTITY)])
def test_inbound_chains_refuse_what_they_cannot_build(mode: str, identity: Issued | None) -> None:
    with pytest.raises(ValueError, match=mode):
        mtls.inbound_chains(mode, [], identity)
