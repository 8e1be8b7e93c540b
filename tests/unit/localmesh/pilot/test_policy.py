"""DestinationRule traffic policies by hand: outlier detection, connection pools, load balancing,
and the subset and port-level overrides, each as istiod writes it into the Envoy cluster."""

from __future__ import annotations

import pytest

from tests.unit.localmesh.pilot.objects import (
    Json,
    cluster,
    demo_workloads,
    destination_rule,
    refusals,
    translate,
)

MAX = 2**32 - 1
DEFAULT_THRESHOLDS = {
    "max_connections": MAX,
    "max_pending_requests": MAX,
    "max_requests": MAX,
    "max_retries": MAX,
    "track_remaining": True,
}


def _clusters(rules: Json) -> dict[str, Json]:
    resources = translate(rules, workloads=demo_workloads("v1", "v2", per_version=2))
    return {c["name"]: c for c in resources.clusters}


def test_without_a_rule_a_service_gets_one_cluster_with_istiods_defaults() -> None:
    resources = translate(workloads=demo_workloads("v1", "v2"))
    (only,) = resources.clusters
    assert only["name"] == cluster("")
    assert only["@type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    assert only["lb_policy"] == "LEAST_REQUEST"
    assert only["connect_timeout"] == "10s"
    assert only["circuit_breakers"] == {"thresholds": [DEFAULT_THRESHOLDS]}
    assert "outlier_detection" not in only
    hosts = [
        e["endpoint"]["hostname"] for e in only["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert hosts == ["demo-v1-0", "demo-v2-0"]


def test_subsets_select_workloads_by_labels() -> None:
    found = _clusters(destination_rule(subsets=("v1", "v2", "v3")))
    assert list(found) == [cluster(""), cluster("v1"), cluster("v2"), cluster("v3")]
    endpoints = found[cluster("v2")]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["hostname"] for e in endpoints] == ["demo-v2-0", "demo-v2-1"]
    assert endpoints[0]["endpoint"]["address"]["socket_address"]["address"] == "127.0.0.1"
    # A subset that selects nothing is still a cluster: Envoy answers 503, as with no pods.
    assert found[cluster("v3")]["load_assignment"]["endpoints"] == []


def test_outlier_detection_is_enforced_at_100_percent_with_success_rate_off() -> None:
    outlier = {
        "consecutive5xxErrors": 3,
        "consecutiveGatewayErrors": 0,
        "interval": "1s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 50,
        "minHealthPercent": 20,
    }
    found = _clusters(destination_rule(trafficPolicy={"outlierDetection": outlier}))
    for name in (cluster(""), cluster("v1"), cluster("v2")):
        assert found[name]["outlier_detection"] == {
            "enforcing_success_rate": 0,
            "consecutive_5xx": 3,
            "enforcing_consecutive_5xx": 100,
            "consecutive_gateway_failure": 0,
            "enforcing_consecutive_gateway_failure": 0,
            "interval": "1s",
            "base_ejection_time": "30s",
            "max_ejection_percent": 50,
        }
        assert found[name]["common_lb_config"] == {"healthy_panic_threshold": {"value": 20}}


def test_outlier_detection_turns_the_panic_threshold_off_unless_min_health_is_set() -> None:
    found = _clusters(destination_rule(trafficPolicy={"outlierDetection": {}}))
    assert found[cluster("v1")]["common_lb_config"] == {"healthy_panic_threshold": {"value": 0}}
    # Envoy's own defaults (5 consecutive 5xx) apply to what is left unset.
    assert found[cluster("v1")]["outlier_detection"] == {"enforcing_success_rate": 0}


def test_connection_pool_sets_circuit_breakers_and_protocol_options() -> None:
    pool = {
        "tcp": {"maxConnections": 10, "connectTimeout": "250ms"},
        "http": {
            "http1MaxPendingRequests": 1,
            "http2MaxRequests": 5,
            "maxRequestsPerConnection": 2,
            "maxRetries": 4,
            "idleTimeout": "30s",
        },
    }
    service = _clusters(destination_rule(trafficPolicy={"connectionPool": pool}))[cluster("")]
    assert service["circuit_breakers"] == {
        "thresholds": [
            {
                "max_connections": 10,
                "max_pending_requests": 1,
                "max_requests": 5,
                "max_retries": 4,
                "track_remaining": True,
            }
        ]
    }
    assert service["connect_timeout"] == "0.25s"
    options = service["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert (
        options["@type"]
        == "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    )
    assert options["common_http_protocol_options"] == {
        "max_requests_per_connection": 2,
        "idle_timeout": "30s",
    }
    assert options["explicit_http_config"] == {"http_protocol_options": {}}


@pytest.mark.parametrize(
    ("simple", "policy"),
    [
        ("ROUND_ROBIN", "ROUND_ROBIN"),
        ("LEAST_REQUEST", "LEAST_REQUEST"),
        ("LEAST_CONN", "LEAST_REQUEST"),
        ("RANDOM", "RANDOM"),
        ("UNSPECIFIED", "LEAST_REQUEST"),
    ],
)
def test_simple_load_balancer(simple: str, policy: str) -> None:
    found = _clusters(destination_rule(trafficPolicy={"loadBalancer": {"simple": simple}}))
    assert {c["lb_policy"] for c in found.values()} == {policy}


def test_a_subset_policy_replaces_the_hosts_block_by_block() -> None:
    rules = destination_rule(
        trafficPolicy={
            "loadBalancer": {"simple": "RANDOM"},
            "connectionPool": {"http": {"http1MaxPendingRequests": 7}},
            "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s"},
        }
    )
    rules["spec"]["subsets"][1]["trafficPolicy"] = {"outlierDetection": {"consecutive5xxErrors": 1}}
    found = _clusters(rules)
    stable, canary = found[cluster("v1")], found[cluster("v2")]
    assert stable["outlier_detection"]["interval"] == "10s"
    # The subset's block replaces the host's whole block: its interval is not inherited.
    assert canary["outlier_detection"] == {
        "enforcing_success_rate": 0,
        "consecutive_5xx": 1,
        "enforcing_consecutive_5xx": 100,
    }
    # Blocks the subset leaves alone come from the host.
    assert canary["lb_policy"] == "RANDOM"
    assert canary["circuit_breakers"]["thresholds"][0]["max_pending_requests"] == 7


def test_port_level_settings_for_the_service_port_replace_every_block() -> None:
    rules = destination_rule(
        trafficPolicy={
            "loadBalancer": {"simple": "RANDOM"},
            "outlierDetection": {"consecutive5xxErrors": 5},
            "portLevelSettings": [
                {"port": {"number": 80}, "connectionPool": {"tcp": {"maxConnections": 3}}}
            ],
        }
    )
    service = _clusters(rules)[cluster("")]
    assert service["circuit_breakers"]["thresholds"][0]["max_connections"] == 3
    # Port-level settings do not inherit: unset blocks fall back to istiod's defaults.
    assert service["lb_policy"] == "LEAST_REQUEST"
    assert "outlier_detection" not in service


def test_cluster_metadata_names_the_rule_and_subset() -> None:
    canary = _clusters(destination_rule())[cluster("v2")]
    assert canary["metadata"] == {
        "filter_metadata": {
            "istio": {
                "config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/demo",
                "subset": "v2",
            }
        }
    }


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        # ISTIO_MUTUAL needs the mesh's certificates, which these translations are not given.
        ({"tls": {"mode": "ISTIO_MUTUAL"}}, "spec.trafficPolicy.tls.mode"),
        ({"tls": {"mode": "SIMPLE"}}, "spec.trafficPolicy.tls.mode"),
        ({"tls": {"mode": "DISABLE", "sni": "x"}}, "spec.trafficPolicy.tls.sni"),
        ({"tls": {"mode": "PLAIN"}}, "spec.trafficPolicy.tls.mode"),
        (
            {"loadBalancer": {"consistentHash": {"httpHeaderName": "x"}}},
            "loadBalancer.consistentHash",
        ),
        ({"loadBalancer": {"simple": "PASSTHROUGH"}}, "loadBalancer.simple"),
        ({"outlierDetection": {"consecutiveErrors": 5}}, "outlierDetection.consecutiveErrors"),
        ({"outlierDetection": {"consecutive5xxErrors": "five"}}, "consecutive5xxErrors"),
        ({"connectionPool": {"http": {"h2UpgradePolicy": "UPGRADE"}}}, "http.h2UpgradePolicy"),
        ({"connectionPool": {"http": {"maxConcurrentStreams": 9}}}, "http.maxConcurrentStreams"),
        ({"connectionPool": {"tcp": {"maxConnections": 1, "fast": True}}}, "tcp.fast"),
        ({"tunnel": {"protocol": "CONNECT"}}, "spec.trafficPolicy.tunnel"),
        ({"portLevelSettings": [{"port": {"number": 9090}}]}, "portLevelSettings[0].port"),
        ({"outlierDetection": {"interval": "often"}}, "outlierDetection.interval"),
    ],
)
def test_what_the_local_mesh_cannot_express_is_refused_with_the_field(
    policy: Json, field: str
) -> None:
    problems = refusals(destination_rule(trafficPolicy=policy))
    assert len(problems) == 1, problems
    subject_and_field = problems[0].split(": ")[0]
    assert subject_and_field.startswith("DestinationRule default/demo spec.trafficPolicy")
    assert subject_and_field.endswith(field)


def test_tls_disable_is_accepted_since_it_asks_for_what_the_local_mesh_does() -> None:
    found = _clusters(destination_rule(trafficPolicy={"tls": {"mode": "DISABLE"}}))
    assert "transport_socket" not in found[cluster("v1")]


def test_a_subset_policy_problem_names_the_subset() -> None:
    rules = destination_rule()
    rules["spec"]["subsets"][0]["trafficPolicy"] = {"tls": {"mode": "MUTUAL"}}
    rules["spec"]["subsets"][1]["labels"] = {"version": 2}
    assert [p.split(": ")[0] for p in refusals(rules)] == [
        "DestinationRule default/demo spec.subsets[0].trafficPolicy.tls.mode",
        "DestinationRule default/demo spec.subsets[1].labels",
    ]


def test_rules_for_unknown_hosts_twice_for_a_host_or_with_a_selector_are_refused() -> None:
    unknown = destination_rule()
    unknown["spec"]["host"] = "elsewhere"
    again = destination_rule()
    again["metadata"]["name"] = "again"
    selector = destination_rule(workloadSelector={"matchLabels": {"app": "demo"}})
    selector["metadata"]["name"] = "selector"
    selector["spec"]["host"] = "demo.default.svc.cluster.local"
    assert refusals(unknown, destination_rule(), again, selector) == (
        "DestinationRule default/demo spec.host: not supported by the local mesh (no workload of"
        " the local mesh serves 'elsewhere')",
        "DestinationRule default/again spec.host: not supported by the local mesh"
        " (demo.default.svc.cluster.local already has DestinationRule default/demo)",
        "DestinationRule default/selector spec.host: not supported by the local mesh"
        " (demo.default.svc.cluster.local already has DestinationRule default/demo)",
        "DestinationRule default/selector spec.workloadSelector: not supported by the local mesh"
        " (the local mesh's one client Envoy has no workload labels to select on)",
    )
