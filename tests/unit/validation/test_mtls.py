"""`canary.validation.mtls`: the mTLS findings of `canary validate`, read from real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canary.validation import loader, mtls
from canary.validation.findings import About
from canary.validation.inventory import Index
from tests.unit.validation.documents import canary, destination_rule, virtual_service, write


def peer_authentication(
    name: str = "default", *, namespace: str = "shop", mode: str = "STRICT", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"mtls": {"mode": mode}, **spec},
    }


def with_tls(rule: dict[str, Any], mode: str) -> dict[str, Any]:
    rule["spec"]["trafficPolicy"] = {"tls": {"mode": mode}}
    return rule


def findings(folder: Path, *documents: Any) -> list[str]:
    file = write(folder / "input.yaml", *documents)
    loaded = loader.load([file])
    assert loaded.findings == []
    index = Index.of(loaded.inventory)
    (placed,) = loaded.inventory.canaries
    about = About(placed.where, "Canary shop/web")
    mtls.check(about, placed.obj, index)
    return [f"{f.field}: {f.message}" for f in about.findings]


def test_the_loader_indexes_peer_authentications(tmp_path: Path) -> None:
    file = write(
        tmp_path / "pa.yaml", peer_authentication(), peer_authentication("b", mode="DISABLE")
    )
    index = Index.of(loader.load([file]).inventory)
    assert sorted(index.peer_authentications) == [("shop", "b"), ("shop", "default")]


def test_an_unserved_security_version_is_a_finding(tmp_path: Path) -> None:
    body = peer_authentication()
    body["apiVersion"] = "security.istio.io/v2"
    loaded = loader.load([write(tmp_path / "pa.yaml", body)])
    assert [f.field for f in loaded.findings] == ["apiVersion"]


def test_strict_against_a_disable_rule_names_both_subsets(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        canary(),
        virtual_service(),
        with_tls(destination_rule(), "DISABLE"),
        peer_authentication(namespace="istio-system"),
    )
    assert [line.partition(": ")[0] for line in found] == [
        "Canary shop/web spec.stable.subset",
        "Canary shop/web spec.canary.subset",
    ]
    assert found[0].startswith(
        "Canary shop/web spec.stable.subset: mTLS: DestinationRule shop/web "
        "spec.trafficPolicy.tls.mode: sends plaintext to subset v1, which istio-system/default"
    )


def test_istio_mutual_against_strict_is_clean(tmp_path: Path) -> None:
    rule = with_tls(destination_rule(), "ISTIO_MUTUAL")
    assert findings(tmp_path, canary(), rule, peer_authentication()) == []


def test_the_canarys_labels_select_a_workload_policy(tmp_path: Path) -> None:
    """The subset says only version; the Canary's labels add the app the policy selects."""
    policy = peer_authentication(
        "web-v2", selector={"matchLabels": {"app": "web", "version": "v2"}}
    )
    rule = with_tls(destination_rule(), "DISABLE")
    assert findings(tmp_path, canary(), rule, policy) == []
    labelled = canary(canary={"subset": "v2", "labels": {"app": "web", "version": "v2"}})
    (line,) = findings(tmp_path, labelled, rule, policy)
    assert line.startswith("Canary shop/web spec.canary.subset: mTLS: DestinationRule shop/web")


def test_a_gate_webhook_at_a_strict_service_is_refused_plaintext(tmp_path: Path) -> None:
    """flagger#239: the controller has no sidecar, so its plaintext call is refused."""
    hooks = [
        {"name": "gate", "type": "pre-rollout", "url": "http://web.shop:9080/check"},
        {"name": "outside", "type": "pre-rollout", "url": "http://tester.example.com/run"},
        {
            "name": "load",
            "type": "rollout",
            "url": "http://loadtester.test/",
            "metadata": {"cmd": "hey -z 1m http://web-canary.shop.svc.cluster.local:9080/"},
        },
    ]
    found = findings(
        tmp_path,
        canary(analysis={"stepWeights": [10, 50], "webhooks": hooks}),
        peer_authentication(),
    )
    assert [line.partition(": ")[0] for line in found] == [
        "Canary shop/web spec.analysis.webhooks[0].url",
        "Canary shop/web spec.analysis.webhooks[2].metadata.cmd",
    ]
    assert "the controller, which has no sidecar, sends plaintext" in found[0]
    assert "a load tester run without a sidecar sends plaintext" in found[1]


def test_a_webhook_at_a_permissive_service_is_fine(tmp_path: Path) -> None:
    hooks = [{"name": "gate", "type": "pre-rollout", "url": "http://web/check"}]
    document = canary(analysis={"stepWeights": [10], "webhooks": hooks})
    assert findings(tmp_path, document, peer_authentication(mode="PERMISSIVE")) == []
    assert findings(tmp_path, document) == []


def test_service_namespace_reads_a_full_host() -> None:
    assert mtls.service_namespace("web.other.svc.cluster.local", "shop") == "other"
    assert mtls.service_namespace("web", "shop") == "shop"
    assert mtls.service_namespace("web.other", "shop") == "shop"


def test_a_malformed_url_in_a_command_is_not_a_host(tmp_path: Path) -> None:
    hooks = [
        {
            "name": "load",
            "type": "rollout",
            "url": "http://loadtester.test/",
            "metadata": {"cmd": "hey http://[::1/ http://web:9080/"},
        }
    ]
    document = canary(analysis={"stepWeights": [10], "webhooks": hooks})
    (line,) = findings(tmp_path, document, peer_authentication())
    assert line.startswith(
        "Canary shop/web spec.analysis.webhooks[0].metadata.cmd: http://web:9080/"
    )
