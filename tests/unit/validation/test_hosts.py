"""Hosts and pods as the analysis reads them: the edges the analyzer table does not show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.validation.documents import canary, destination_rule, messages, virtual_service


def _service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }


def _pod(name: str, labels: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
    }


def _objects(*pods: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return (canary(), virtual_service(), destination_rule(), _service(), *pods)


def test_a_subset_without_pods_is_ist0173_and_one_with_pods_is_not(tmp_path: Path) -> None:
    found = messages(tmp_path, *_objects(_pod("v1", {"app": "web", "version": "v1"})))
    assert len(found) == 1, found
    assert found[0].startswith("Canary shop/web spec.canary.subset: IST0173 ")
    assert "subset v2 selects no pod" in found[0]


def test_unreadable_pod_labels_leave_the_namespace_unjudged(tmp_path: Path) -> None:
    pods = (_pod("v1", {"app": "web", "version": "v1"}), _pod("odd", ["app=web"]))
    assert messages(tmp_path, *_objects(*pods)) == []


def test_a_deployment_without_a_pod_template_leaves_the_namespace_unjudged(
    tmp_path: Path,
) -> None:
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web-v2", "namespace": "shop"},
        "spec": {"template": 3},
    }
    found = messages(tmp_path, *_objects(_pod("v1", {"app": "web", "version": "v1"}), broken))
    assert found == []


def test_a_deployment_of_an_unserved_version_is_refused_by_name(tmp_path: Path) -> None:
    old = {"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "d"}}
    assert messages(tmp_path, old) == ["apiVersion: 'apps/v1beta1' is not served (use apps/v1)"]


def test_a_service_entry_host_is_no_missing_destination(tmp_path: Path) -> None:
    mirror = virtual_service()
    mirror["spec"]["http"][0]["mirror"] = {"host": "audit.records.svc.cluster.local"}
    entry = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "audit", "namespace": "records"},
        "spec": {"hosts": ["audit.records.svc.cluster.local"], "exportTo": ["shop"]},
    }
    without = messages(tmp_path, canary(), mirror, destination_rule(), _service())
    assert [line.split(": ")[1].split()[0] for line in without] == ["IST0101"]
    assert messages(tmp_path, canary(), mirror, destination_rule(), _service(), entry) == []
    entry["spec"]["exportTo"] = ["."]
    assert len(messages(tmp_path, canary(), mirror, destination_rule(), _service(), entry)) == 1


def test_unreadable_gateway_servers_and_selectors_are_not_judged(tmp_path: Path) -> None:
    """A Gateway's odd fields give no IST0162 or IST0145 and no traceback (unknown is not bad),
    while its readable server is still judged."""
    gateway_pods = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gw", "namespace": "istio-system"},
        "spec": {"template": {"metadata": {"labels": {"istio": "ingressgateway"}}}},
    }
    gateway_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "gw", "namespace": "istio-system"},
        "spec": {"selector": {"istio": "ingressgateway"}, "ports": [{"port": 80}, 4]},
    }
    odd = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": "shop"},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {"port": {"number": "8080"}, "hosts": ["*"]},
                5,
                {"port": 9},
                {"port": {"number": 8443}, "hosts": ["*"]},
            ],
        },
    }
    twin = {**odd, "metadata": {"name": "twin", "namespace": "shop"}}
    twin["spec"] = {
        "selector": ["istio"],
        "servers": [{"port": {"number": 8443}, "hosts": ["*"]}],
    }
    vs = virtual_service(hosts=["shop.example.com"])
    vs["spec"]["gateways"] = ["edge"]
    found = messages(
        tmp_path,
        canary(),
        vs,
        destination_rule(),
        _service(),
        gateway_pods,
        gateway_service,
        odd,
        twin,
    )
    assert len(found) == 1, found
    assert "IST0162 " in found[0], found[0]
    assert "port 8443" in found[0], found[0]
