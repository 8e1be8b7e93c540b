"""demo/mtls: the mtls-strict scenario's objects, and when the mesh turns mTLS on."""

from __future__ import annotations

from canary.api import mtls as analysis
from canary.demo import mtls, scenario


def _mtls_problems(bodies: list[dict[str, object]]) -> list[str]:
    return [
        problem.line()
        for problem in analysis.problems(
            namespace=scenario.NAMESPACE,
            host=scenario.SERVICE,
            subsets={"v1": {"version": "v1"}, "v2": {"version": "v2"}},
            peer_authentications=[b for b in bodies if b["kind"] == "PeerAuthentication"],
            destination_rules=[b for b in bodies if b["kind"] == "DestinationRule"],
            root_namespace="istio-system",
        )
    ]


def test_the_scenario_is_strict_with_istio_mutual_and_meets() -> None:
    bodies = scenario.objects(scenario.Scenario.MTLS_STRICT)
    kinds = [body["kind"] for body in bodies]
    assert kinds.count("PeerAuthentication") == 1
    rule = next(body for body in bodies if body["kind"] == "DestinationRule")
    assert rule["spec"]["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    # The good scenario's outlier detection stays: tls is added beside it.
    assert "outlierDetection" in rule["spec"]["trafficPolicy"]
    assert _mtls_problems(bodies) == []


def test_the_same_objects_with_tls_disable_break_both_subsets() -> None:
    bodies = scenario.objects(scenario.Scenario.MTLS_STRICT)
    rule = next(body for body in bodies if body["kind"] == "DestinationRule")
    rule["spec"]["trafficPolicy"]["tls"] = {"mode": "DISABLE"}
    assert len(_mtls_problems(bodies)) == 2


def test_strict_leaves_the_objects_it_was_given_alone() -> None:
    good = scenario.objects(scenario.Scenario.GOOD)
    mtls.strict(good, "default")
    rule = next(body for body in good if body["kind"] == "DestinationRule")
    assert "tls" not in rule["spec"]["trafficPolicy"]


def test_mesh_options_turn_mtls_on_only_when_asked() -> None:
    assert mtls.mesh_options(scenario.objects(scenario.Scenario.GOOD)) == {}
    strict = scenario.objects(scenario.Scenario.MTLS_STRICT)
    options = mtls.mesh_options(strict)
    assert options["mtls"] is True
    assert [p["kind"] for p in options["peer_authentications"]] == ["PeerAuthentication"]
