"""VirtualService routes by hand: matches, weights, timeouts, retries, faults, mirrors, rewrites."""

from __future__ import annotations

import pytest

from canary.localmesh.pilot import failure
from tests.unit.localmesh.pilot.objects import (
    Json,
    cluster,
    destination_rule,
    refusals,
    routes,
    to,
    translate,
    virtual_service,
)


def _one_route(http: Json, *, rules: Json | None = None) -> Json:
    resources = translate(virtual_service(http), rules or destination_rule())
    (route,) = routes(resources)
    return route


def test_weights_become_weighted_clusters_without_the_zero_weight_ones() -> None:
    split = _one_route({"route": to(("v1", 90), ("v2", 10))})["route"]["weighted_clusters"]
    assert split == {
        "clusters": [{"name": cluster("v1"), "weight": 90}, {"name": cluster("v2"), "weight": 10}]
    }
    all_stable = _one_route({"route": to(("v1", 100), ("v2", 0))})["route"]
    assert all_stable["weighted_clusters"] == {"clusters": [{"name": cluster("v1"), "weight": 100}]}


def test_weights_are_relative_and_may_total_more_than_100() -> None:
    """As in Istio since 1.15: the controller writes 90/90/20 for a stable subset on two
    destinations; Envoy gets the numbers as written."""
    split = _one_route({"route": to(("v1", 180), ("v2", 20))})["route"]["weighted_clusters"]
    assert [entry["weight"] for entry in split["clusters"]] == [180, 20]


def test_a_lone_destination_is_a_cluster_without_weights() -> None:
    action = _one_route({"route": to(("v2", None))})["route"]
    assert action["cluster"] == cluster("v2")
    assert "weighted_clusters" not in action


def test_a_destination_without_subset_goes_to_the_service_cluster() -> None:
    action = _one_route({"route": [{"destination": {"host": "demo"}}]})["route"]
    assert action["cluster"] == cluster("")


def test_every_match_block_is_its_own_route_with_the_same_action_in_order() -> None:
    resources = translate(
        virtual_service(
            {
                "name": "api",
                "match": [
                    {"name": "exact", "uri": {"exact": "/a"}},
                    {"uri": {"prefix": "/b"}},
                    {"uri": {"regex": "/c/[0-9]+"}, "ignoreUriCase": True},
                ],
                "route": to(("v2", None)),
            },
            {"route": to(("v1", None))},
        ),
        destination_rule(),
    )
    found = routes(resources)
    assert [r.get("name") for r in found] == ["api.exact", "api", "api", None]
    assert [r["match"] for r in found] == [
        {"path": "/a", "case_sensitive": True},
        {"prefix": "/b", "case_sensitive": True},
        {"safe_regex": {"regex": "/c/[0-9]+"}, "case_sensitive": False},
        {"prefix": "/"},
    ]
    assert [r["route"]["cluster"] for r in found] == [cluster("v2")] * 3 + [cluster("v1")]
    assert found[0]["decorator"] == {"operation": "demo.default.svc.cluster.local:80/a"}
    assert found[0]["metadata"]["filter_metadata"]["istio"]["config"] == (
        "/apis/networking.istio.io/v1/namespaces/default/virtual-service/demo"
    )


def test_header_matches_are_sorted_with_pseudo_headers_last() -> None:
    route = _one_route(
        {
            "match": [
                {
                    "headers": {
                        "x-b": {"prefix": "canary"},
                        "end-user": {"exact": "jason"},
                        "x-c": {"regex": "v[12]"},
                        "x-present": {},
                        "x-star": {"regex": "*"},
                    },
                    "withoutHeaders": {"x-a": {"exact": "no"}},
                    "method": {"exact": "GET"},
                    "queryParams": {"debug": {"exact": "1"}},
                }
            ],
            "route": to(("v2", None)),
        }
    )
    assert route["match"]["headers"] == [
        {"name": "end-user", "string_match": {"exact": "jason"}},
        {
            "name": "x-a",
            "string_match": {"exact": "no"},
            "invert_match": True,
            "treat_missing_header_as_empty": True,
        },
        {"name": "x-b", "string_match": {"prefix": "canary"}},
        {"name": "x-c", "string_match": {"safe_regex": {"regex": "v[12]"}}},
        {"name": "x-present", "present_match": True},
        {"name": "x-star", "present_match": True},
        {"name": ":method", "string_match": {"exact": "GET"}},
    ]
    assert route["match"]["query_parameters"] == [{"name": "debug", "string_match": {"exact": "1"}}]


def test_timeout_is_written_and_defaults_to_none_as_in_istiod() -> None:
    assert _one_route({"timeout": "1.5s", "route": to(("v1", None))})["route"]["timeout"] == "1.5s"
    assert (
        _one_route({"timeout": "250ms", "route": to(("v1", None))})["route"]["timeout"] == "0.25s"
    )
    assert _one_route({"route": to(("v1", None))})["route"]["timeout"] == "0s"


def test_without_retries_istiods_default_retry_policy_applies() -> None:
    policy = _one_route({"route": to(("v1", None))})["route"]["retry_policy"]
    assert policy == {
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3"
                    ".PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 5,
    }


def test_retries_set_attempts_per_try_timeout_and_status_codes() -> None:
    retries = {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx, 503,connect-failure"}
    policy = _one_route({"retries": retries, "route": to(("v1", None))})["route"]["retry_policy"]
    assert policy["num_retries"] == 3
    assert policy["per_try_timeout"] == "2s"
    assert policy["retry_on"] == "5xx,connect-failure,retriable-status-codes"
    assert policy["retriable_status_codes"] == [503]
    assert policy["retry_host_predicate"] == failure.default_retry_policy()["retry_host_predicate"]


@pytest.mark.parametrize("retries", [{"attempts": 0}, {"perTryTimeout": "1s"}])
def test_zero_attempts_turn_retries_off(retries: Json) -> None:
    assert (
        "retry_policy" not in _one_route({"retries": retries, "route": to(("v1", None))})["route"]
    )


def test_fault_abort_and_delay_go_to_the_fault_filter_per_million() -> None:
    fault = {
        "abort": {"httpStatus": 503, "percentage": {"value": 12.5}},
        "delay": {"fixedDelay": "100ms", "percent": 30},
    }
    route = _one_route({"fault": fault, "route": to(("v1", None))})
    assert route["typed_per_filter_config"]["envoy.filters.http.fault"] == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        "abort": {
            "http_status": 503,
            "percentage": {"numerator": 125000, "denominator": "MILLION"},
        },
        "delay": {"fixed_delay": "0.1s", "percentage": {"numerator": 30, "denominator": "HUNDRED"}},
    }


def test_mirror_with_and_without_a_percentage() -> None:
    rules = destination_rule(subsets=("v1", "v2", "shadow"))
    half = _one_route(
        {
            "mirror": {"host": "demo", "subset": "shadow"},
            "mirrorPercentage": {"value": 25},
            "route": to(("v1", None)),
        },
        rules=rules,
    )
    assert half["route"]["request_mirror_policies"] == [
        {
            "cluster": cluster("shadow"),
            "runtime_fraction": {"default_value": {"numerator": 250000, "denominator": "MILLION"}},
            "trace_sampled": False,
        }
    ]
    whole = _one_route(
        {"mirror": {"host": "demo", "subset": "shadow"}, "route": to(("v1", None))}, rules=rules
    )
    share = whole["route"]["request_mirror_policies"][0]["runtime_fraction"]["default_value"]
    assert share == {"numerator": 100, "denominator": "HUNDRED"}
    none = _one_route(
        {
            "mirror": {"host": "demo", "subset": "shadow"},
            "mirrorPercentage": {"value": 0},
            "route": to(("v1", None)),
        },
        rules=rules,
    )
    assert "request_mirror_policies" not in none["route"]


def test_headers_rewrite_and_authority() -> None:
    route = _one_route(
        {
            "headers": {
                "request": {"set": {"x-canary": "yes", "host": "api.internal"}, "remove": ["x-b"]},
                "response": {"add": {"x-served-by": "mesh"}},
            },
            "rewrite": {"uri": "/v2/"},
            "route": to(("v1", None)),
        }
    )
    assert route["request_headers_to_add"] == [
        {
            "header": {"key": "x-canary", "value": "yes"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]
    assert route["request_headers_to_remove"] == ["x-b"]
    assert route["response_headers_to_add"][0]["append_action"] == "APPEND_IF_EXISTS_OR_ADD"
    assert route["route"]["prefix_rewrite"] == "/v2/"
    assert route["route"]["host_rewrite_literal"] == "api.internal"


def test_redirect_and_direct_response() -> None:
    redirect = _one_route({"redirect": {"uri": "/new", "authority": "other", "redirectCode": 302}})
    assert redirect["redirect"] == {
        "host_redirect": "other",
        "path_redirect": "/new",
        "response_code": "FOUND",
    }
    direct = _one_route({"directResponse": {"status": 418, "body": {"string": "teapot"}}})
    assert direct["direct_response"] == {"status": 418, "body": {"inline_string": "teapot"}}


@pytest.mark.parametrize(
    ("http", "field"),
    [
        ({"corsPolicy": {}, "route": to(("v1", None))}, "spec.http[0].corsPolicy"),
        ({"delegate": {"name": "other"}}, "spec.http[0].delegate"),
        ({"route": to(("v1", None)), "mirrorPercent": 5}, "spec.http[0].mirrorPercent"),
        ({"route": to(("v1", None)), "shadow": True}, "spec.http[0].shadow"),
        ({"match": [{"sourceLabels": {"app": "x"}}], "route": to(("v1", None))}, "sourceLabels"),
        ({"match": [{"gateways": ["edge"]}], "route": to(("v1", None))}, "gateways[0]"),
        ({"match": [{"uri": {"suffix": "/x"}}], "route": to(("v1", None))}, "uri.suffix"),
        (
            {"fault": {"abort": {"grpcStatus": "UNAVAILABLE"}}, "route": to(("v1", None))},
            "grpcStatus",
        ),
        (
            {"route": [{"destination": {"host": "demo", "subset": "v1", "port": {"number": 9}}}]},
            "port.number",
        ),
        ({"redirect": {"uri": "/x"}, "timeout": "1s"}, "spec.http[0].timeout"),
        (
            {"route": to(("v1", None)), "retries": {"attempts": 2, "retryBudget": 1}},
            "retries.retryBudget",
        ),
    ],
)
def test_what_the_local_mesh_cannot_express_is_refused_with_the_field(
    http: Json, field: str
) -> None:
    problems = refusals(virtual_service(http), destination_rule())
    assert len(problems) == 1, problems
    assert problems[0].startswith("VirtualService default/demo spec.http[0]")
    assert field in problems[0].split(": ")[0]


def test_unknown_subsets_and_hosts_are_named() -> None:
    problems = refusals(
        virtual_service(
            {"route": [*to(("v1", 50)), {"destination": {"host": "other"}, "weight": 50}]}
        ),
        virtual_service({"route": to(("v3", None))}, name="second", hosts=["demo2"]),
        destination_rule(),
    )
    assert problems == (
        "VirtualService default/demo spec.http[0].route[1].destination.host: not supported by the"
        " local mesh (no workload of the local mesh serves 'other')",
        "VirtualService default/second spec.hosts[0]: not supported by the local mesh (no workload"
        " of the local mesh serves 'demo2')",
        "VirtualService default/second spec.http[0].route[0].destination.subset: subset 'v3' of"
        " demo.default.svc.cluster.local is not defined by a DestinationRule",
    )


def test_every_problem_in_every_object_is_reported_at_once() -> None:
    problems = refusals(
        virtual_service(
            {"route": to(("v1", None)), "corsPolicy": {}, "timeout": "soon"},
            tcp=[{"route": []}],
        ),
        destination_rule(trafficPolicy={"tls": {"mode": "ISTIO_MUTUAL"}}),
    )
    assert [p.split(": ")[0] for p in problems] == [
        "DestinationRule default/demo spec.trafficPolicy.tls.mode",
        "VirtualService default/demo spec.tcp",
        "VirtualService default/demo spec.http[0].corsPolicy",
        "VirtualService default/demo spec.http[0].timeout",
    ]


def test_a_second_virtual_service_for_the_same_host_is_refused() -> None:
    problems = refusals(
        virtual_service({"route": to(("v1", None))}),
        virtual_service({"route": to(("v2", None))}, name="again"),
        destination_rule(),
    )
    assert problems == (
        "VirtualService default/again spec.hosts[0]: not supported by the local mesh"
        " (demo.default.svc.cluster.local is already routed by VirtualService default/demo)",
    )


def test_objects_not_exported_to_the_clients_namespace_are_refused() -> None:
    elsewhere = virtual_service({"route": to(("v1", None))}, exportTo=["prod"])
    assert refusals(elsewhere, destination_rule())[0].startswith(
        "VirtualService default/demo spec.exportTo:"
    )
    here = virtual_service({"route": to(("v1", None))}, exportTo=["."])
    assert routes(translate(here, destination_rule()))[0]["route"]["cluster"] == cluster("v1")
