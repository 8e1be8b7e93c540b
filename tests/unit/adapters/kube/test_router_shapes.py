"""The Kubernetes router on the shapes people run: the stable subset on two destinations of the
managed route, and an ingress VirtualService and a DestinationRule in other namespaces.

Real istiod and real requests prove the traffic (tests/e2e/istio/test_ingress.py); these pin
which objects are read and patched, and the exact weights sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import DESTINATION_RULE, VIRTUAL_SERVICE, Body
from canary.adapters.kube.router import KubeRouter
from canary.engine.actions import SetWeights
from canary.errors import InvalidSpec
from canary.ports import RouteRef, SubsetRef
from tests.unit.adapters.kube.test_router import RecordingRest

FQDN = "reviews.shop.svc.cluster.local"
VS_PATH = "/apis/networking.istio.io/v1/namespaces/edge/virtualservices/storefront"
DR_PATH = "/apis/networking.istio.io/v1/namespaces/mesh-root/destinationrules/reviews"
REF = RouteRef(
    namespace="shop",
    virtual_service="storefront",
    host="reviews",
    route=None,
    destination_rule="reviews",
    subsets=(SubsetRef("v1", (("version", "v1"),)), SubsetRef("v2", (("version", "v2"),))),
    virtual_service_namespace="edge",
    destination_rule_namespace="mesh-root",
)


def _ingress_vs(route: list[dict[str, Any]]) -> Body:
    return {
        "metadata": {"name": "storefront", "namespace": "edge", "resourceVersion": "3"},
        "spec": {
            "hosts": ["shop.example.com"],
            "gateways": ["ingress"],
            "http": [{"route": route}],
        },
    }


def _dr(subsets: list[dict[str, Any]], host: str = FQDN) -> Body:
    return {
        "metadata": {"name": "reviews", "namespace": "mesh-root", "resourceVersion": "9"},
        "spec": {"host": host, "subsets": subsets},
    }


def _dest(subset: str, weight: int, port: int = 9080) -> dict[str, Any]:
    return {
        "destination": {"host": FQDN, "subset": subset, "port": {"number": port}},
        "weight": weight,
    }


class SeenSplits:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str, dict[str, int]]] = []

    def serves(
        self, namespace: str, host: str, route: str | None, weights: Mapping[str, int]
    ) -> bool:
        self.asked.append((namespace, host, dict(weights)))
        return True


def _router(vs: Body, dr: Body) -> tuple[KubeRouter, RecordingRest, SeenSplits]:
    rest = RecordingRest()
    rest.objects = {VS_PATH: vs, DR_PATH: dr}
    cache = ClusterCache(rest)  # type: ignore[arg-type]
    cache.of(VIRTUAL_SERVICE).remember(vs)
    cache.of(DESTINATION_RULE).remember(dr)
    seen = SeenSplits()
    return KubeRouter(rest, cache, propagation=seen), rest, seen  # type: ignore[arg-type]


LABELLED = [{"name": "v1", "labels": {"version": "v1"}}]


def test_the_stable_subset_on_two_ports_is_written_90_90_20() -> None:
    route = [_dest("v1", 50), _dest("v1", 50, port=9081)]
    router, rest, _ = _router(_ingress_vs(route), _dr(LABELLED))
    router.set_weights(REF, SetWeights("v1", "v2", 10))
    dr_patch, vs_patch = rest.patches
    assert dr_patch[0] == DR_PATH
    path, operations = vs_patch
    assert path == VS_PATH
    assert operations == [
        {"op": "test", "path": "/spec/http/0/route", "value": route},
        {"op": "add", "path": "/spec/http/0/route/0/weight", "value": 90},
        {"op": "add", "path": "/spec/http/0/route/1/weight", "value": 90},
        {"op": "add", "path": "/spec/http/0/route/-", "value": _dest("v2", 20)},
    ]


def test_a_split_on_two_stable_ports_reads_as_percentages_and_asks_envoy_as_written() -> None:
    route = [_dest("v1", 90), _dest("v1", 90, port=9081), _dest("v2", 20)]
    router, _, seen = _router(_ingress_vs(route), _dr([*LABELLED, {"name": "v2", "labels": {}}]))
    traffic = router.read(REF)
    assert dict(traffic.weights) == {"v1": 90, "v2": 10}
    # Envoy holds 90+90 and 20, which a percentage rounded for the engine could not match.
    assert seen.asked == [("shop", "reviews", {"v1": 180, "v2": 20})]


def test_objects_in_other_namespaces_are_read_and_patched_there() -> None:
    router, rest, _ = _router(_ingress_vs([_dest("v1", 100)]), _dr(LABELLED))
    assert router.read(REF).problems == ()
    router.set_weights(REF, SetWeights("v1", "v2", 25))
    assert [path for path, _ in rest.patches] == [DR_PATH, VS_PATH]
    subsets_added = rest.patches[0][1][1]
    assert subsets_added["value"] == {"name": "v2", "labels": {"version": "v2"}}


def test_a_short_host_in_the_gateways_namespace_is_another_service() -> None:
    """`reviews` written in namespace edge is reviews.edge: that route is not the Canary's."""
    short = {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}
    router, _, _ = _router(_ingress_vs([short]), _dr(LABELLED))
    with pytest.raises(InvalidSpec, match="VirtualService edge/storefront has no http route"):
        router.read(REF)


def test_a_rule_in_another_namespace_must_name_the_service_fully() -> None:
    router, _, _ = _router(_ingress_vs([_dest("v1", 100)]), _dr(LABELLED, host="reviews"))
    [problem] = router.read(REF).problems
    assert "DestinationRule mesh-root/reviews is for host 'reviews'" in problem


def test_a_missing_object_is_named_with_its_own_namespace() -> None:
    router, _, _ = _router(_ingress_vs([_dest("v1", 100)]), _dr(LABELLED))
    elsewhere = dataclasses.replace(REF, virtual_service_namespace="x")
    with pytest.raises(InvalidSpec, match="VirtualService x/storefront not found"):
        router.read(elsewhere)
