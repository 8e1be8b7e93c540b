"""localmesh/identity and the mesh's inbound modes: certificates as Citadel issues them, and
each instance's listener file following the PeerAuthentications pushed to the mesh."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cryptography import x509

from canary.localmesh import envoy, identity
from canary.localmesh.certs import LocalCA
from canary.localmesh.inbound_tls import InboundTls


def _policy(mode: str, **selector: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"mtls": {"mode": mode}}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def test_instances_share_the_services_spiffe_identity(tmp_path: Path) -> None:
    ids = identity.issue(
        LocalCA.create(tmp_path), namespace="shop", service="web", instances=["web-v1-0"]
    )
    cert = x509.load_pem_x509_certificate(ids.instances["web-v1-0"].cert_chain.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/web"
    ]
    assert ids.client_id == "spiffe://cluster.local/ns/shop/sa/loadgen"


def test_accepts_picks_the_port_entry_of_a_workload_policy() -> None:
    labels = {"app": "web", "version": "v2"}
    policy = _policy("STRICT", version="v2")
    policy["spec"]["portLevelMtls"] = {"80": {"mode": "PERMISSIVE"}}
    assert identity.accepts("default", labels, [policy], port=80) == "PERMISSIVE"
    assert identity.accepts("default", labels, [policy], port=8080) == "STRICT"
    assert identity.accepts("default", labels, [], port=80) == "PERMISSIVE"


def test_a_push_rewrites_only_the_listeners_whose_mode_changes(tmp_path: Path) -> None:
    names = ["demo-v1-0", "demo-v2-0"]
    identities = identity.issue(
        LocalCA.create(tmp_path / "certs"), namespace="default", service="demo", instances=names
    )
    inbound = InboundTls(
        identities, namespace="default", service="demo", port=80, peer_authentications=[]
    )
    instances = []
    for name in names:
        version = name.split("-")[1]
        envoy.inbound_bootstrap(
            listen_port=1,
            admin_port=2,
            app_port=3,
            name=name,
            workdir=tmp_path / name,
            **inbound.for_new_instance(name, version),
        )
        instances.append(
            SimpleNamespace(
                name=name, version=version, inbound=SimpleNamespace(workdir=tmp_path / name)
            )
        )
    assert inbound.modes == {"demo-v1-0": "PERMISSIVE", "demo-v2-0": "PERMISSIVE"}
    inbound.update(instances, [_policy("STRICT", version="v2")])  # type: ignore[arg-type]
    assert inbound.modes == {"demo-v1-0": "PERMISSIVE", "demo-v2-0": "STRICT"}
    files = {
        name: json.loads((tmp_path / name / envoy.LISTENER_FILE).read_text()) for name in names
    }
    assert files["demo-v1-0"]["version_info"] == "1"
    assert files["demo-v2-0"]["version_info"] == "2"
    (listener,) = files["demo-v2-0"]["resources"]
    assert [c["filter_chain_match"] for c in listener["filter_chains"]] == [
        {"transport_protocol": "tls"}
    ]
