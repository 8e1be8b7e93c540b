"""Istio's Bookinfo samples through the Pilot: each translated as istiod would, or refused by field.

The samples are read unchanged from the istio.io/istio module's samples/bookinfo/networking/
(`tests/istiod/samples`). A VirtualService sample is translated with the DestinationRules of its
own file, or else with destination-rule-all.yaml (its subsets must exist). Every sample file is in
exactly one of the two tables, so a new sample cannot slip through untested.
"""

from __future__ import annotations

from typing import Any

import pytest

from canary.localmesh import pilot
from tests.unit.localmesh.pilot.objects import Json, bookinfo_workloads, sample, sample_names

PORT = 9080
RULES = "destination-rule-all.yaml"
JASON = "end-user=jason"

# file -> {host: [(match, destination, fault)]}: "*" matches everything; a destination is one
# subset, or {subset: weight}; a fault is ("abort", status, percent) or ("delay", delay, percent).
TRANSLATED: dict[str, dict[str, list[tuple[str, Any, Any]]]] = {
    "virtual-service-all-v1.yaml": {
        host: [("*", "v1", None)] for host in ("productpage", "reviews", "ratings", "details")
    },
    "virtual-service-details-v2.yaml": {"details": [("*", "v2", None)]},
    "virtual-service-ratings-db.yaml": {
        "reviews": [("*", "v3", None)],
        "ratings": [("*", "v2", None)],
    },
    "virtual-service-ratings-mysql.yaml": {
        "reviews": [("*", "v3", None)],
        "ratings": [("*", "v2-mysql", None)],
    },
    "virtual-service-ratings-mysql-vm.yaml": {
        "reviews": [("*", "v3", None)],
        "ratings": [("*", "v2-mysql-vm", None)],
    },
    "virtual-service-ratings-test-abort.yaml": {
        "ratings": [(JASON, "v1", ("abort", 500, 100.0)), ("*", "v1", None)],
    },
    "virtual-service-ratings-test-delay.yaml": {
        "ratings": [(JASON, "v1", ("delay", "7s", 100.0)), ("*", "v1", None)],
    },
    "virtual-service-reviews-50-v3.yaml": {"reviews": [("*", {"v1": 50, "v3": 50}, None)]},
    "virtual-service-reviews-80-20.yaml": {"reviews": [("*", {"v1": 80, "v2": 20}, None)]},
    "virtual-service-reviews-90-10.yaml": {"reviews": [("*", {"v1": 90, "v2": 10}, None)]},
    "virtual-service-reviews-v2-v3.yaml": {"reviews": [("*", {"v2": 50, "v3": 50}, None)]},
    "virtual-service-reviews-v3.yaml": {"reviews": [("*", "v3", None)]},
    "virtual-service-reviews-jason-v2-v3.yaml": {
        "reviews": [(JASON, "v2", None), ("*", "v3", None)],
    },
    "virtual-service-reviews-test-v2.yaml": {"reviews": [(JASON, "v2", None), ("*", "v1", None)]},
    # Istio's sample keeps a second, unreachable route; it is kept (Envoy never reaches it).
    "fault-injection-details-v1.yaml": {
        "details": [("*", "v1", ("abort", 555, 100.0)), ("*", "v1", None)],
    },
}

# DestinationRule samples: file -> {host: (subsets, lb_policy)}
CLUSTERS: dict[str, dict[str, tuple[list[str], str]]] = {
    "destination-rule-all.yaml": {
        "productpage": (["v1"], "LEAST_REQUEST"),
        "reviews": (["v1", "v2", "v3"], "LEAST_REQUEST"),
        "ratings": (["v1", "v2", "v2-mysql", "v2-mysql-vm"], "LEAST_REQUEST"),
        "details": (["v1", "v2"], "LEAST_REQUEST"),
    },
    "destination-rule-reviews.yaml": {"reviews": (["v1", "v2", "v3"], "RANDOM")},
}

# file -> the "subject field" of every problem, in order
REFUSED: dict[str, list[str]] = {
    "destination-rule-all-mtls.yaml": [
        f"DestinationRule default/{host} spec.trafficPolicy.tls.mode"
        for host in ("productpage", "reviews", "ratings", "details")
    ],
    "egress-rule-google-apis.yaml": [
        "DestinationRule default/originate-tls-for-googleapis spec.host",
        "DestinationRule default/originate-tls-for-googleapis"
        " spec.trafficPolicy.portLevelSettings[0].tls.mode",
        "DestinationRule default/originate-tls-for-googleapis"
        " spec.trafficPolicy.portLevelSettings[0].port",
        "VirtualService default/rewrite-port-for-googleapis spec.hosts[0]",
        "VirtualService default/rewrite-port-for-googleapis spec.http[0].match[0].port",
        "VirtualService default/rewrite-port-for-googleapis"
        " spec.http[0].route[0].destination.port.number",
        "VirtualService default/rewrite-port-for-googleapis spec.http[0].route[0].destination.host",
    ],
}


def _translate_sample(name: str) -> pilot.EnvoyResources:
    documents = sample(name)
    services = [d for d in documents if d["kind"] == "VirtualService"]
    rules = [d for d in documents if d["kind"] == "DestinationRule"]
    if services and not rules:
        rules = [d for d in sample(RULES) if d["kind"] == "DestinationRule"]
    return pilot.translate(services, rules, bookinfo_workloads(), port=PORT)


def _fqdn(host: str) -> str:
    return f"{host}.default.svc.cluster.local"


def _summary(route: Json) -> tuple[str, Any, Any]:
    found = route["match"]
    headers = found.get("headers", [])
    if found.get("prefix") == "/" and not headers:
        where = "*"
    else:
        where = ",".join(f"{h['name']}={h['string_match']['exact']}" for h in headers)
    action = route["route"]
    if "cluster" in action:
        destination: Any = action["cluster"].split("|")[2]
    else:
        destination = {
            c["name"].split("|")[2]: c["weight"] for c in action["weighted_clusters"]["clusters"]
        }
    fault = route.get("typed_per_filter_config", {}).get("envoy.filters.http.fault")
    described: Any = None
    if fault and "abort" in fault:
        share = fault["abort"]["percentage"]
        described = ("abort", fault["abort"]["http_status"], share["numerator"] / 10000)
    elif fault:
        share = fault["delay"]["percentage"]
        described = ("delay", fault["delay"]["fixed_delay"], share["numerator"] / 10000)
    if fault:
        assert share["denominator"] == "MILLION"
    return where, destination, described


# Gateway samples: their VirtualServices are bound to a Gateway only, so no sidecar gets them
# (test_gateway.py translates them for the gateway).
GATEWAY = ("bookinfo-gateway.yaml", "certmanager-gateway.yaml")


def test_every_sample_is_in_a_table() -> None:
    assert sample_names() == sorted({*TRANSLATED, *CLUSTERS, *REFUSED, *GATEWAY})


@pytest.mark.parametrize("name", GATEWAY)
def test_gateway_sample_gives_sidecars_nothing_of_its_own(name: str) -> None:
    resources = _translate_sample(name)
    for virtual_host in resources.route_configuration["virtual_hosts"][:-1]:
        assert [route["name"] for route in virtual_host["routes"]] == ["default"]


@pytest.mark.parametrize("name", sorted(TRANSLATED))
def test_virtual_service_sample_gives_istiods_routes(name: str) -> None:
    resources = _translate_sample(name)
    for host, expected in TRANSLATED[name].items():
        virtual_host = resources.virtual_host(host)
        assert virtual_host["name"] == f"{_fqdn(host)}:{PORT}"
        assert [_summary(route) for route in virtual_host["routes"]] == expected
        for route in virtual_host["routes"]:
            for cluster in _clusters_named(route):
                assert cluster.startswith(f"outbound|{PORT}|")
                assert cluster.endswith(f"|{_fqdn(host)}")
                resources.cluster(cluster)  # every route's cluster exists


def _clusters_named(route: Json) -> list[str]:
    action = route["route"]
    if "cluster" in action:
        return [action["cluster"]]
    return [c["name"] for c in action["weighted_clusters"]["clusters"]]


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_destination_rule_sample_gives_a_cluster_per_subset(name: str) -> None:
    resources = _translate_sample(name)
    workloads = bookinfo_workloads()
    for host, (subsets, lb_policy) in CLUSTERS[name].items():
        for subset in ["", *subsets]:
            cluster = resources.cluster(f"outbound|{PORT}|{subset}|{_fqdn(host)}")
            assert cluster["type"] == "STATIC"
            assert cluster["lb_policy"] == lb_policy
            endpoints = cluster["load_assignment"]["endpoints"]
            names = [
                e["endpoint"]["hostname"] for group in endpoints for e in group["lb_endpoints"]
            ]
            assert names == [
                w.name
                for w in workloads
                if w.host == host and (not subset or w.labels["version"] == subset)
            ]
            if subset:
                assert cluster["metadata"]["filter_metadata"]["istio"]["subset"] == subset


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_sample_the_local_mesh_cannot_express_is_refused_by_field(name: str) -> None:
    with pytest.raises(pilot.TranslationError) as raised:
        _translate_sample(name)
    problems = raised.value.problems
    assert [problem.split(": ")[0] for problem in problems] == REFUSED[name]
    assert str(raised.value) == "\n".join(problems)


def test_mtls_refusal_says_why() -> None:
    with pytest.raises(pilot.TranslationError) as raised:
        _translate_sample("destination-rule-all-mtls.yaml")
    assert raised.value.problems[0] == (
        "DestinationRule default/productpage spec.trafficPolicy.tls.mode: not supported by the"
        " local mesh (this local mesh was started without workload certificates)"
    )


def test_services_without_a_virtual_service_get_istiods_default_route() -> None:
    resources = _translate_sample("virtual-service-reviews-90-10.yaml")
    (route,) = resources.virtual_host("productpage")["routes"]
    assert route["name"] == "default"
    assert route["match"] == {"prefix": "/"}
    assert route["route"]["cluster"] == f"outbound|{PORT}||{_fqdn('productpage')}"
    assert route["route"]["retry_policy"]["num_retries"] == 2


def test_route_configuration_is_named_after_the_port_with_a_block_all_host_last() -> None:
    config = _translate_sample("virtual-service-reviews-90-10.yaml").route_configuration
    assert config["@type"] == "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    assert config["name"] == str(PORT)
    assert config["ignore_port_in_host_matching"] is True
    assert config["virtual_hosts"][-1]["domains"] == ["*"]
    assert config["virtual_hosts"][-1]["routes"][0]["direct_response"] == {"status": 502}


def test_virtual_host_answers_to_the_names_a_client_in_the_namespace_uses() -> None:
    virtual_host = _translate_sample(RULES).virtual_host("reviews")
    assert virtual_host["domains"] == [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local.",
        "reviews",
        "reviews.default.svc",
        "reviews.default",
    ]
