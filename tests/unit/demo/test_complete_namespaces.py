"""`scenario.complete` puts the VirtualService and DestinationRule it adds for a policy where the
Canary says they live, naming the service in full from another namespace."""

from __future__ import annotations

from canary.demo import scenario


def test_added_objects_go_to_the_namespaces_the_canary_names() -> None:
    canary = scenario.canary()
    canary["spec"]["service"]["virtualServiceNamespace"] = "edge"
    canary["spec"]["service"]["destinationRuleNamespace"] = "istio-system"
    added = {body["kind"]: body for body in scenario.complete([canary])}
    vs, dr = added["VirtualService"], added["DestinationRule"]
    fqdn = f"{scenario.SERVICE}.{canary['metadata']['namespace']}.svc.cluster.local"
    assert vs["metadata"]["namespace"] == "edge"
    assert {d["destination"]["host"] for d in vs["spec"]["http"][0]["route"]} == {fqdn}
    assert dr["metadata"]["namespace"] == "istio-system"
    assert dr["spec"]["host"] == fqdn


def test_in_the_canarys_namespace_the_short_name_stays() -> None:
    added = {body["kind"]: body for body in scenario.complete([scenario.canary()])}
    assert added["VirtualService"]["spec"]["hosts"] == [scenario.SERVICE]
    assert added["DestinationRule"]["spec"]["host"] == scenario.SERVICE
