"""`canary.validation.crosscheck` and its parts: a Canary against everything it touches in Istio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canary.validation import loader
from canary.validation.inventory import Index
from tests.unit.validation.documents import (
    analysis,
    canary,
    destination,
    destination_rule,
    messages,
    virtual_service,
    write,
)

SERVICE = "Canary shop/web spec.service"


def _split(*weights: int) -> list[dict[str, object]]:
    return [
        {
            "name": "primary",
            "route": [destination("web", f"v{n + 1}", w) for n, w in enumerate(weights)],
        }
    ]


def test_a_fitting_pair_has_no_findings(tmp_path: Path) -> None:
    assert messages(tmp_path, canary(), virtual_service(), destination_rule()) == []


def test_a_canary_alone_is_not_checked_against_objects_it_was_not_given(tmp_path: Path) -> None:
    """No VirtualService or DestinationRule in the paths: they may live in the cluster."""
    assert messages(tmp_path, canary()) == []


def test_a_missing_virtual_service_is_reported_with_the_names_seen(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), virtual_service("webb"), virtual_service("api"))
    assert found == [
        f"{SERVICE}.host: VirtualService shop/web not found (in shop: api, webb)",
    ]


def test_a_virtual_service_in_another_namespace_is_not_the_canarys(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), virtual_service(namespace="shopp"))
    assert found == [
        f"{SERVICE}.host: VirtualService shop/web not found (none in shop; seen: shopp/web)"
    ]


def test_a_named_virtual_service_is_looked_up_by_that_name(tmp_path: Path) -> None:
    found = messages(
        tmp_path, canary(service={"host": "web", "virtualService": "front"}), virtual_service()
    )
    assert found == [
        f"{SERVICE}.virtualService: VirtualService shop/front not found (in shop: web)"
    ]


def test_short_and_fully_qualified_hosts_are_the_same_host_in_one_namespace(
    tmp_path: Path,
) -> None:
    """Istio reads `web` in namespace shop as web.shop.svc.cluster.local."""
    fqdn = "web.shop.svc.cluster.local"
    vs = virtual_service(hosts=[fqdn], http=[{"route": [destination(fqdn, "v1")]}])
    assert messages(tmp_path, canary(), vs, destination_rule(host=fqdn)) == []


def test_a_partly_qualified_host_is_not_expanded(tmp_path: Path) -> None:
    """`web.shop` is taken as written by Istio, so a route to it does not send to `web`."""
    vs = virtual_service(http=[{"route": [destination("web.shop", "v1")]}])
    assert messages(tmp_path, canary(), vs) == [
        f"{SERVICE}.route: VirtualService shop/web has no http route whose destinations all "
        "point at web (routes: http[0]); name the route to manage"
    ]


def test_a_wildcard_host_matches_by_suffix(tmp_path: Path) -> None:
    vs = virtual_service(hosts=["*.shop.svc.cluster.local"])
    assert messages(tmp_path, canary(), vs) == []


def test_a_named_route_that_does_not_exist_is_reported_with_the_routes(tmp_path: Path) -> None:
    vs = virtual_service(http=[{"name": "a", "route": [destination("web", "v1")]}, {"route": []}])
    found = messages(tmp_path, canary(service={"host": "web", "route": "primary"}), vs)
    assert found == [
        f'{SERVICE}.route: VirtualService shop/web has no http route named "primary" '
        "(routes: a, http[1])"
    ]


def test_without_a_route_to_the_host_the_default_route_is_missing(tmp_path: Path) -> None:
    vs = virtual_service(http=[{"route": [destination("api", None)]}, {"redirect": {"uri": "/"}}])
    assert messages(tmp_path, canary(), vs) == [
        f"{SERVICE}.route: VirtualService shop/web has no http route whose destinations all "
        "point at web (routes: http[0], http[1]); name the route to manage"
    ]


def test_the_default_route_is_the_first_that_sends_only_to_the_host(tmp_path: Path) -> None:
    """A route that also sends elsewhere is passed over, so its weights are never touched."""
    vs = virtual_service(
        http=[
            {
                "match": [{"uri": {"prefix": "/old"}}],
                "route": [destination("web", "v1", 50), destination("legacy", None, 50)],
            },
            {"route": [destination("web", "v1", 100), destination("web", "v3", 0)]},
        ]
    )
    found = messages(tmp_path, canary(), vs)
    # The second route was chosen: the finding is about its third subset, not about `legacy`.
    assert found == [
        f"{SERVICE}.route: VirtualService shop/web spec.http[1]: spec.http[1].route[1] sends "
        "to web/v3, which is neither the stable (v1) nor the canary (v2) subset"
    ]


def test_a_default_route_with_a_match_is_reported(tmp_path: Path) -> None:
    """Only requests that match would move: a header route is rarely what a rollout means."""
    vs = virtual_service(
        http=[
            {
                "match": [{"headers": {"x-tester": {"exact": "1"}}}],
                "route": [destination("web", "v1")],
            },
            {"route": [destination("web", "v1")]},
        ]
    )
    found = messages(tmp_path, canary(), vs)
    assert found == [
        f"{SERVICE}.route: VirtualService shop/web spec.http[0] is the first route that sends "
        "only to web, but it has a match, so only matching requests would move; name the route "
        "to manage"
    ]


def test_a_named_route_with_a_match_is_taken_as_meant(tmp_path: Path) -> None:
    vs = virtual_service(
        http=[
            {
                "name": "testers",
                "match": [{"uri": {"prefix": "/"}}],
                "route": [destination("web", "v1")],
            }
        ]
    )
    assert messages(tmp_path, canary(service={"host": "web", "route": "testers"}), vs) == []


def test_weights_are_relative_and_any_total_but_0_is_accepted(tmp_path: Path) -> None:
    """Istio reads weights as relative since 1.15: 90 and 20 is a split of 9 to 2."""
    for weights in ((90, 20), (1, 0), (90,)):
        found = messages(
            tmp_path,
            canary(service={"host": "web", "route": "primary"}),
            virtual_service(http=_split(*weights)),
        )
        assert found == [], weights


def test_weights_that_total_0_are_refused_as_istio_refuses_them(tmp_path: Path) -> None:
    http = _split(0)
    http[0]["route"].append(destination("web", "v2"))  # type: ignore[attr-defined]
    found = messages(tmp_path, canary(), virtual_service(http=http))
    assert found == [
        f"{SERVICE}.route: VirtualService shop/web spec.http[0]: the weights total 0, which "
        "Istio refuses (weights are relative: any total but 0)"
    ]


def test_a_negative_weight_is_refused(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), virtual_service(http=_split(110, -10)))
    assert found == [
        f"{SERVICE}.route: VirtualService shop/web spec.http[0]: weights must be whole numbers >= 0"
    ]


def test_the_route_must_send_to_the_stable_subset(tmp_path: Path) -> None:
    vs = virtual_service(http=[{"route": [destination("web", "v2")]}])
    assert messages(tmp_path, canary(), vs) == [
        "Canary shop/web spec.stable.subset: VirtualService shop/web spec.http[0] has no "
        "destination for the stable subset v1 (it sends to: web/v2)"
    ]


def test_a_destination_without_a_subset_is_neither_stable_nor_canary(tmp_path: Path) -> None:
    vs = virtual_service(
        http=[{"route": [destination("web", "v1", 90), destination("web", None, 10)]}]
    )
    assert messages(tmp_path, canary(), vs) == [
        f"{SERVICE}.route: VirtualService shop/web spec.http[0]: spec.http[0].route[1] sends to "
        "web (no subset), which is neither the stable (v1) nor the canary (v2) subset"
    ]


def test_a_named_route_may_only_send_to_the_canarys_host(tmp_path: Path) -> None:
    http = [
        {"name": "primary", "route": [destination("web", "v1", 90), destination("api", "v1", 10)]}
    ]
    found = messages(
        tmp_path, canary(service={"host": "web", "route": "primary"}), virtual_service(http=http)
    )
    assert found == [
        f"{SERVICE}.host: VirtualService shop/web spec.http[0]: spec.http[0].route[1] sends to "
        "api, not web; the managed route may only send to the canary's host"
    ]


def test_a_missing_destination_rule_is_reported_when_others_are_given(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), destination_rule("api", host="api"))
    assert found == [
        f"{SERVICE}.host: no DestinationRule applies to web.shop.svc.cluster.local for callers "
        "in shop (looked in shop, istio-system)"
    ]


def test_the_destination_rule_host_must_be_the_canarys(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), destination_rule(host="api"))
    assert found == [
        f"{SERVICE}.host: no DestinationRule applies to web.shop.svc.cluster.local for callers "
        "in shop (looked in shop, istio-system); DestinationRule shop/web is for api"
    ]


def test_the_stable_subset_must_be_in_the_destination_rule(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), destination_rule(v2={"version": "v2"}))
    assert found == [
        "Canary shop/web spec.stable.subset: DestinationRule shop/web has no subset v1 "
        "(subsets: v2)"
    ]


def test_a_canary_subset_missing_without_labels_is_reported(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), destination_rule(v1={"version": "v1"}))
    assert found == [
        "Canary shop/web spec.canary.subset: DestinationRule shop/web has no subset v2 "
        "(subsets: v1)"
    ]


def test_a_canary_subset_with_labels_may_be_added_by_the_controller(tmp_path: Path) -> None:
    """The Canary says what the subset selects, and no route sends to it yet."""
    document = canary(canary={"subset": "v2", "labels": {"version": "v2"}})
    assert messages(tmp_path, document, destination_rule(v1={"version": "v1"})) == []


def test_a_subset_without_labels_selects_every_pod(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), destination_rule(v1={}, v2={"version": "v2"}))
    assert found == [
        "Canary shop/web spec.stable.subset: DestinationRule shop/web subset v1 has no labels, "
        "so it selects every pod of the host"
    ]


def test_canary_labels_must_agree_with_the_subsets_labels(tmp_path: Path) -> None:
    """Each label of the subset must be in the Canary's labels, with the same value."""
    document = canary(
        stable={"subset": "v1", "labels": {"version": "v1", "app": "web"}},
        canary={"subset": "v2", "labels": {"app": "web", "tier": "canary"}},
    )
    rule = destination_rule(v1={"version": "v0"}, v2={"version": "v2", "track": "canary"})
    assert messages(tmp_path, document, rule) == [
        "Canary shop/web spec.stable.labels.version: is v1, but DestinationRule shop/web subset "
        "v1 selects version=v0",
        "Canary shop/web spec.canary.labels: has no track, but DestinationRule shop/web subset "
        "v2 selects track=canary",
        "Canary shop/web spec.canary.labels: has no version, but DestinationRule shop/web subset "
        "v2 selects version=v2",
    ]


def test_two_subsets_with_the_same_labels_select_the_same_pods(tmp_path: Path) -> None:
    rule = destination_rule(v1={"app": "web"}, v2={"app": "web"})
    assert messages(tmp_path, canary(), rule) == [
        "Canary shop/web spec.canary.subset: DestinationRule shop/web subsets v1 and v2 have "
        "the same labels, so both select the same pods"
    ]


def test_malformed_istio_fields_give_findings_not_tracebacks(tmp_path: Path) -> None:
    """Pass-through dicts can hold anything; a wrong type reads as absent."""
    vs = virtual_service(hosts="web", http=[{"route": "x"}, 3, {"route": [{"destination": 1}]}])  # type: ignore[arg-type]
    rule = destination_rule()
    rule["spec"]["subsets"] = [{"name": "v1", "labels": ["x"]}, "v2", {"labels": {}}]
    found = messages(tmp_path, canary(), vs, rule)
    assert found
    assert not any("internal error" in line for line in found)


CHAOS = [
    {
        "name": "bad-pod",
        "atWeight": 10,
        "duration": "20s",
        "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
        "expect": {"ejection": True, "overflow": True},
    }
]


def test_an_experiment_the_destination_rule_cannot_pass_is_reported(tmp_path: Path) -> None:
    found = messages(
        tmp_path, canary(analysis=analysis(interval="30s"), chaos=CHAOS), destination_rule()
    )
    assert found == [
        "Canary shop/web spec.chaos[0].expect.ejection: DestinationRule shop/web (its "
        "trafficPolicy or subset v2's) has no outlierDetection, so no canary host can be "
        "ejected and the experiment would always fail",
        "Canary shop/web spec.chaos[0].expect.overflow: DestinationRule shop/web (its "
        "trafficPolicy or subset v2's) has no connectionPool, so no circuit breaker can shed "
        "load and the experiment would always fail",
    ]


def test_resilience_on_the_canary_subset_alone_is_enough(tmp_path: Path) -> None:
    rule = destination_rule()
    rule["spec"]["subsets"][1]["trafficPolicy"] = {
        "outlierDetection": {"consecutive5xxErrors": 3},
        "connectionPool": {"http": {"http1MaxPendingRequests": 1}},
    }
    assert messages(tmp_path, canary(analysis=analysis(interval="30s"), chaos=CHAOS), rule) == []


# Istio's joins: the route by its destinations, gateways, rules by host across namespaces.


def _gateway(name: str = "ingress", namespace: str = "istio-system", *hosts: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": list(hosts)}
            ],
        },
    }


def _service(name: str = "web", namespace: str = "shop", *ports: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": f"p{port}", "port": port} for port in ports or (80,)]},
    }


def _ingress(namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    """The tutorials' edge route: external hosts, bound to the ingress Gateway, to web's subsets."""
    vs = virtual_service(
        "web-edge",
        namespace=namespace,
        hosts=["shop.example.com"],
        http=[
            {
                "route": [
                    destination("web.shop.svc.cluster.local", "v1", 90),
                    destination("web.shop.svc.cluster.local", "v2", 10),
                ]
            }
        ],
    )
    vs["spec"]["gateways"] = ["istio-system/ingress"]
    vs["spec"].update(spec)
    return vs


EDGE = {"host": "web", "virtualService": "web-edge"}


def test_the_ingress_pattern_passes_whatever_the_virtual_services_hosts(tmp_path: Path) -> None:
    """The route is found by its destinations; the VS's hosts are the names callers type."""
    found = messages(
        tmp_path,
        canary(service=EDGE),
        _ingress(),
        _gateway("ingress", "istio-system", "*.example.com"),
        destination_rule(),
    )
    assert found == []


def test_an_ingress_route_in_the_gateways_namespace_is_found_by_its_namespace(
    tmp_path: Path,
) -> None:
    service = {**EDGE, "virtualServiceNamespace": "istio-system"}
    vs = _ingress("istio-system", gateways=["ingress"])
    gateway = _gateway("ingress", "istio-system", "shop.example.com")
    assert messages(tmp_path, canary(service=service), vs, gateway, destination_rule()) == []


def test_a_gateway_that_is_not_in_the_paths_is_ist0101(tmp_path: Path) -> None:
    found = messages(
        tmp_path, canary(service=EDGE), _ingress(), _gateway("egress", "istio-system", "*")
    )
    assert found == [
        f"{SERVICE}.virtualService: IST0101 VirtualService shop/web-edge spec.gateways names "
        "Gateway istio-system/ingress not found (in istio-system: egress)"
    ]


def test_a_gateway_that_does_not_serve_the_hosts_is_ist0132(tmp_path: Path) -> None:
    gateway = _gateway("ingress", "istio-system", "shop/*.example.org", "other/shop.example.com")
    assert messages(tmp_path, canary(service=EDGE), _ingress(), gateway) == [
        f"{SERVICE}.virtualService: IST0132 VirtualService shop/web-edge spec.hosts "
        "(shop.example.com) are not served by Gateway istio-system/ingress (its servers' hosts: "
        "shop/*.example.org, other/shop.example.com)"
    ]


def test_a_gateway_host_for_the_virtual_services_namespace_serves_it(tmp_path: Path) -> None:
    gateway = _gateway("ingress", "istio-system", "shop/*.example.com")
    assert messages(tmp_path, canary(service=EDGE), _ingress(), gateway) == []


def test_two_mesh_virtual_services_for_one_host_are_ist0109(tmp_path: Path) -> None:
    rival = virtual_service("web-too")
    rival["spec"]["hosts"] = ["web.shop.svc.cluster.local"]
    found = messages(tmp_path, canary(), virtual_service(), rival)
    assert len(found) == 1
    assert found[0].startswith(
        f"{SERVICE}.host: IST0109 VirtualService shop/web and VirtualService shop/web-too "
    )
    assert "all route web.shop.svc.cluster.local on the mesh" in found[0]


def test_mesh_virtual_services_exported_to_different_namespaces_do_not_conflict(
    tmp_path: Path,
) -> None:
    mine, rival = virtual_service(), virtual_service("web-too", namespace="other")
    mine["spec"]["exportTo"] = ["."]
    rival["spec"]["exportTo"] = ["."]
    rival["spec"]["hosts"] = ["web.shop.svc.cluster.local"]
    assert messages(tmp_path, canary(), mine, rival) == []


def test_a_rule_in_the_root_namespace_applies_when_none_is_nearer(tmp_path: Path) -> None:
    rule = destination_rule("web-mesh", namespace="istio-system", host="web.shop.svc.cluster.local")
    assert messages(tmp_path, canary(), virtual_service(), rule) == []


def test_a_short_host_in_a_rule_means_a_service_of_the_rules_namespace(tmp_path: Path) -> None:
    """`web` in istio-system is web.istio-system, not the Canary's web.shop."""
    rule = destination_rule("web", namespace="istio-system")
    assert messages(tmp_path, canary(), virtual_service(), rule) == [
        f"{SERVICE}.host: no DestinationRule applies to web.shop.svc.cluster.local for callers "
        "in shop (looked in shop, istio-system)"
    ]


def test_a_rule_exported_to_its_own_namespace_only_does_not_reach_others(tmp_path: Path) -> None:
    rule = destination_rule("web-mesh", namespace="istio-system", host="web.shop.svc.cluster.local")
    rule["spec"]["exportTo"] = ["."]
    service = {
        "host": "web",
        "destinationRuleNamespace": "istio-system",
        "destinationRule": "web-mesh",
    }
    assert messages(tmp_path, canary(service=service), virtual_service(), rule) == [
        f"{SERVICE}.destinationRule: DestinationRule istio-system/web-mesh is not a rule istiod "
        "applies to web.shop.svc.cluster.local for callers in shop: its exportTo (.) leaves out "
        "shop"
    ]


def test_the_canarys_namespace_rule_takes_precedence_over_the_root_one(tmp_path: Path) -> None:
    """istiod stops at the first namespace with a rule: the root rule's subsets are not merged."""
    near = destination_rule(v1={"version": "v1"})
    root = destination_rule("web-mesh", namespace="istio-system", host="web.shop.svc.cluster.local")
    found = messages(tmp_path, canary(), virtual_service(), near, root)
    assert found == [
        "Canary shop/web spec.canary.subset: DestinationRule shop/web has no subset v2 "
        "(subsets: v1)"
    ]


def test_rules_for_one_host_are_merged_and_a_subset_defined_twice_is_reported(
    tmp_path: Path,
) -> None:
    first = destination_rule(v1={"version": "v1"})
    second = destination_rule("web-canary", host="web", v1={"version": "v0"}, v2={"version": "v2"})
    found = messages(tmp_path, canary(), virtual_service(), first, second)
    assert found == [
        f"{SERVICE}.host: DestinationRule shop/web-canary defines subset v1 for "
        "web.shop.svc.cluster.local as DestinationRule shop/web does, and the definitions "
        "disagree; istiod keeps the older definition only, so give each subset one definition"
    ]


def test_a_subset_name_twice_in_one_rule_is_reported(tmp_path: Path) -> None:
    rule = destination_rule()
    rule["spec"]["subsets"].append({"name": "v2", "labels": {"version": "v2"}})
    assert messages(tmp_path, canary(), virtual_service(), rule) == [
        f"{SERVICE}.host: DestinationRule shop/web defines subset v2 for "
        "web.shop.svc.cluster.local twice; istiod keeps the older definition only, so give each "
        "subset one definition"
    ]


def test_the_stable_subset_in_two_destinations_one_per_port_is_accepted(tmp_path: Path) -> None:
    def to(subset: str, port: int, weight: int) -> dict[str, Any]:
        entry = destination("web", subset, weight)
        entry["destination"]["port"] = {"number": port}
        return entry

    vs = virtual_service(http=[{"route": [to("v1", 80, 45), to("v1", 8080, 45), to("v2", 80, 10)]}])
    found = messages(tmp_path, canary(), vs, destination_rule(), _service("web", "shop", 80, 8080))
    assert found == []


def test_a_destination_without_a_port_to_a_two_port_service_is_ist0112(tmp_path: Path) -> None:
    found = messages(tmp_path, canary(), virtual_service(), _service("web", "shop", 80, 8080))
    assert found == [
        f"{SERVICE}.route: IST0112 VirtualService shop/web spec.http[0].route[0].destination "
        "names no port, but Service shop/web has several (80, 8080); add destination.port.number"
    ]


def test_a_port_the_service_does_not_have_is_ist0101(tmp_path: Path) -> None:
    vs = virtual_service()
    vs["spec"]["http"][0]["route"][0]["destination"]["port"] = {"number": 9090}
    assert messages(tmp_path, canary(), vs, _service("web", "shop", 80)) == [
        f"{SERVICE}.route: IST0101 VirtualService shop/web spec.http[0].route[0].destination "
        "sends to web:9090, a port Service shop/web does not have (ports: 80)"
    ]


def test_mirrors_to_a_missing_subset_or_host_are_ist0101(tmp_path: Path) -> None:
    vs = virtual_service()
    vs["spec"]["http"][0]["mirror"] = {"host": "web", "subset": "v9"}
    vs["spec"]["http"][0]["mirrors"] = [{"destination": {"host": "shadow"}}]
    found = messages(tmp_path, canary(), vs, destination_rule(), _service())
    assert found == [
        f"{SERVICE}.route: IST0101 VirtualService shop/web spec.http[0].mirrors[0].destination "
        "sends to shadow, but no Service or ServiceEntry shadow.shop.svc.cluster.local is in the "
        "paths",
        f"{SERVICE}.route: IST0101 VirtualService shop/web spec.http[0].mirror mirrors to "
        "web/v9, a subset no DestinationRule for web.shop.svc.cluster.local defines (subsets: "
        "v1, v2)",
    ]


def test_a_route_behind_one_without_a_match_is_unreachable_ist0130(tmp_path: Path) -> None:
    vs = virtual_service(
        http=[
            {"route": [destination("legacy", None)]},
            {"name": "primary", "route": [destination("web", "v1")]},
        ]
    )
    found = messages(tmp_path, canary(service={"host": "web", "route": "primary"}), vs)
    assert found == [
        f"{SERVICE}.route: IST0130 VirtualService shop/web spec.http[1] is unreachable: http[0] "
        "before it has no match, so it takes every request"
    ]


def test_a_route_whose_matches_are_all_taken_earlier_is_unreachable_ist0130(
    tmp_path: Path,
) -> None:
    match = [{"name": "a", "uri": {"prefix": "/api"}}]
    vs = virtual_service(
        http=[
            {"name": "old", "match": match, "route": [destination("legacy", None)]},
            {
                "name": "primary",
                "match": [{"uri": {"prefix": "/api"}}],
                "route": [destination("web", "v1")],
            },
        ]
    )
    found = messages(tmp_path, canary(service={"host": "web", "route": "primary"}), vs)
    assert found == [
        f"{SERVICE}.route: IST0130 VirtualService shop/web spec.http[1] is unreachable: every "
        "one of its matches is used by an earlier route (old)"
    ]


def test_a_host_reached_only_by_tcp_routes_cannot_be_managed(tmp_path: Path) -> None:
    vs = virtual_service(http=[])
    vs["spec"]["tcp"] = [{"route": [destination("web", "v1")]}]
    assert messages(tmp_path, canary(), vs) == [
        f"{SERVICE}.route: cannot be managed: VirtualService shop/web reaches "
        "web.shop.svc.cluster.local only by tcp routes; a canary moves the weights of an http "
        "route"
    ]


def test_a_delegate_root_cannot_be_managed(tmp_path: Path) -> None:
    vs = virtual_service(http=[{"delegate": {"name": "web-routes", "namespace": "team"}}])
    assert messages(tmp_path, canary(), vs) == [
        f"{SERVICE}.route: cannot be managed: VirtualService shop/web is a delegate root "
        "(spec.http[0] delegates to VirtualService team/web-routes); name the delegate "
        "VirtualService, whose routes hold the weights, in spec.service.virtualService"
    ]


def test_another_route_without_a_match_for_the_host_on_the_gateway_is_reported(
    tmp_path: Path,
) -> None:
    """istiod merges both VirtualServices' routes in creation order; a catch-all may come first."""
    other = _ingress()
    other["metadata"]["name"] = "web-old"
    other["spec"]["http"] = [{"route": [destination("legacy.shop.svc.cluster.local", None)]}]
    gateway = _gateway("ingress", "istio-system", "*")
    found = messages(tmp_path, canary(service=EDGE), _ingress(), other, gateway)
    assert len(found) == 1
    assert found[0].startswith(
        f"{SERVICE}.virtualService: VirtualService shop/web-edge and VirtualService shop/web-old "
    )
    assert "the other's http[0] has no match, so if it is older it takes every request" in found[0]


def test_malformed_gateways_services_mirrors_and_exports_are_no_traceback(tmp_path: Path) -> None:
    """Every new field read is read defensively: a wrong type reads as absent."""
    vs = _ingress(
        gateways=["istio-system/ingress", 7, "mesh"],
        exportTo="shop",
        http=[
            {"match": "x", "route": [{"destination": {"host": "web", "subset": "v1", "port": 80}}]},
            {
                "route": [
                    {"destination": {"host": "web", "subset": "v1", "port": {"number": "x"}}}
                ],
                "mirror": "web",
                "mirrors": [3, {"destination": None}, {"destination": {"host": 5}}],
                "delegate": {"name": 4},
            },
        ],
        tcp=[3, {"route": "x"}, {"route": [{"destination": {"host": None}}]}],
    )
    gateway = _gateway()
    gateway["spec"]["servers"] = [3, {"hosts": "*"}, {"hosts": [None, "./x", "*/*"]}]
    service = _service()
    service["spec"] = {"ports": [{"port": "80"}, 3, None]}
    service["metadata"]["annotations"] = {"networking.istio.io/exportTo": 5}
    rule = destination_rule()
    rule["spec"]["exportTo"] = "shop"
    rule["spec"]["workloadSelector"] = []
    found = messages(tmp_path, canary(service={**EDGE, "route": None}), vs, gateway, service, rule)
    assert not any("internal error" in line for line in found), found


def test_a_rule_in_the_services_namespace_applies_to_callers_it_is_exported_to(
    tmp_path: Path,
) -> None:
    """A Canary in `front` for web.shop: shop's rule applies unless kept to shop by `.`."""
    document = canary(service={"host": "web.shop.svc.cluster.local", "virtualService": "web"})
    document["metadata"]["namespace"] = "front"
    full = "web.shop.svc.cluster.local"
    vs = virtual_service(
        namespace="front", hosts=[full], http=[{"route": [destination(full, "v1")]}]
    )
    rule = destination_rule()
    assert messages(tmp_path, document, vs, rule) == []
    rule["spec"]["exportTo"] = ["."]
    assert messages(tmp_path, document, vs, rule) == [
        "Canary front/web spec.service.host: no DestinationRule applies to "
        "web.shop.svc.cluster.local for callers in front (looked in front, shop, istio-system)"
    ]


def test_the_canarys_port_must_be_one_of_the_services(tmp_path: Path) -> None:
    document = canary(service={"host": "web", "port": 8080})
    assert messages(tmp_path, document, _service("web", "shop", 80)) == [
        f"{SERVICE}.port: IST0101 is 8080, but Service shop/web has no such port (ports: 80)"
    ]


def test_a_short_destination_in_another_namespace_is_explained(tmp_path: Path) -> None:
    """`web` in an istio-system VirtualService is web.istio-system, not the Canary's web.shop."""
    service = {**EDGE, "virtualServiceNamespace": "istio-system"}
    vs = _ingress("istio-system", http=[{"route": [destination("web", "v1")]}])
    assert messages(tmp_path, canary(service=service), vs) == [
        f"{SERVICE}.route: VirtualService istio-system/web-edge has no http route whose "
        "destinations all point at web (routes: http[0]); name the route to manage (the service "
        "is web.shop.svc.cluster.local; a short destination host is read in istio-system, so "
        "write it in full)"
    ]


def test_a_mesh_route_whose_hosts_leave_out_the_service_is_reported(tmp_path: Path) -> None:
    """Sidecars apply a VirtualService to requests for its hosts; `web.shop` is not web.shop's
    full name, so calls to web never meet this route."""
    vs = virtual_service(hosts=["web.shop"])
    assert messages(tmp_path, canary(), vs) == [
        f"{SERVICE}.host: VirtualService shop/web is bound to the mesh alone, and its spec.hosts "
        "(web.shop) do not include web.shop.svc.cluster.local, so no request for the service "
        "reaches its routes"
    ]
    vs["spec"]["gateways"] = ["mesh", "istio-system/ingress"]
    assert messages(tmp_path, canary(), vs) == []


def test_a_rule_kept_to_its_namespace_gives_the_gateway_no_subsets(tmp_path: Path) -> None:
    """The ingress gateway's proxies join rules from their own namespace: `exportTo: [.]` in
    shop leaves them without the subsets the route sends to."""
    rule = destination_rule()
    gateway = _gateway("ingress", "istio-system", "*")
    assert messages(tmp_path, canary(service=EDGE), _ingress(), gateway, rule) == []
    rule["spec"]["exportTo"] = ["."]
    assert messages(tmp_path, canary(service=EDGE), _ingress(), gateway, rule) == [
        f"{SERVICE}.host: Gateway istio-system/ingress's proxies (taken to run in istio-system) "
        "see no DestinationRule for web.shop.svc.cluster.local, without subsets v1, v2: "
        "requests through the gateway to them fail; export DestinationRule shop/web to "
        "istio-system (exportTo)"
    ]


def test_gateways_services_and_peer_authentications_are_indexed(tmp_path: Path) -> None:
    policy = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    file = write(tmp_path / "all.yaml", _gateway(), _service(), policy)
    loaded = loader.load([file])
    assert loaded.findings == []
    index = Index.of(loaded.inventory)
    assert list(index.gateways) == [("istio-system", "ingress")]
    assert list(index.services) == [("shop", "web")]
    assert list(index.services_by_host) == ["web.shop.svc.cluster.local"]
    assert list(index.peer_authentications) == [("istio-system", "default")]
