"""The Kubernetes router's writes, on a cache filled by hand and a Rest that records requests.

What reaches a real API server is proven by tests/e2e/kube; these pin the exact patches, since
"only the weights change" is a promise about the bytes we send.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import (
    DESTINATION_RULE,
    JSON_PATCH,
    VIRTUAL_SERVICE,
    ApiError,
    Body,
)
from canary.adapters.kube.router import KubeRouter, weights_writer
from canary.adapters.kube.workloads import deployment_ready
from canary.engine.actions import SetWeights
from canary.errors import InvalidSpec, Unavailable
from canary.ports import RouteRef, SubsetRef


class RecordingRest:
    def __init__(self) -> None:
        self.patches: list[tuple[str, Any]] = []
        self.fail_with: ApiError | None = None
        self.objects: dict[str, Body] = {}

    def patch(self, path: str, body: Any, *, content_type: str) -> Body:
        assert content_type == JSON_PATCH
        self.patches.append((path, body))
        if self.fail_with is not None:
            raise self.fail_with
        current = copy.deepcopy(self.objects[path])
        current["metadata"]["resourceVersion"] = str(
            int(current["metadata"]["resourceVersion"]) + 1
        )
        return current

    def get_or_none(self, path: str) -> Body | None:
        return self.objects.get(path)


def _vs(route: list[dict[str, Any]], version: str = "5") -> Body:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "demo", "namespace": "shop", "resourceVersion": version},
        "spec": {
            "hosts": ["demo"],
            "http": [
                {"name": "other", "route": [{"destination": {"host": "else"}}]},
                {"name": "primary", "timeout": "3s", "route": route},
            ],
        },
    }


def _dr(subsets: list[dict[str, Any]] | None, host: str = "demo") -> Body:
    spec: dict[str, Any] = {"host": host}
    if subsets is not None:
        spec["subsets"] = subsets
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "demo", "namespace": "shop", "resourceVersion": "9"},
        "spec": spec,
    }


def _dest(subset: str, weight: int | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"destination": {"host": "demo", "subset": subset, **extra}}
    if weight is not None:
        entry["weight"] = weight
    return entry


REF = RouteRef(
    namespace="shop",
    virtual_service="demo",
    host="demo",
    route="primary",
    destination_rule="demo",
    subsets=(SubsetRef("v1", (("version", "v1"),)), SubsetRef("v2", (("version", "v2"),))),
)
VS_PATH = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/demo"
DR_PATH = "/apis/networking.istio.io/v1/namespaces/shop/destinationrules/demo"
LABELLED = [
    {"name": "v1", "labels": {"version": "v1"}},
    {"name": "v2", "labels": {"version": "v2"}},
]


def _router(vs: Body, dr: Body) -> tuple[KubeRouter, RecordingRest, ClusterCache]:
    rest = RecordingRest()
    rest.objects = {VS_PATH: vs, DR_PATH: dr}
    cache = ClusterCache(rest)  # type: ignore[arg-type]
    cache.of(VIRTUAL_SERVICE).remember(vs)
    cache.of(DESTINATION_RULE).remember(dr)
    return KubeRouter(rest, cache), rest, cache  # type: ignore[arg-type]


def _weights(canary_weight: int) -> SetWeights:
    return SetWeights(stable_subset="v1", canary_subset="v2", canary_weight=canary_weight)


def test_only_the_weights_of_the_managed_route_are_patched_guarded_by_a_test() -> None:
    route = [_dest("v1", 100, port={"number": 80}), _dest("v2", 0)]
    router, rest, _ = _router(_vs(route), _dr(LABELLED))
    router.set_weights(REF, _weights(25))
    assert rest.patches == [
        (
            VS_PATH,
            [
                {"op": "test", "path": "/spec/http/1/route", "value": route},
                {"op": "add", "path": "/spec/http/1/route/0/weight", "value": 75},
                {"op": "add", "path": "/spec/http/1/route/1/weight", "value": 25},
            ],
        )
    ]


def test_the_canary_destination_is_appended_as_a_copy_of_the_stable_one() -> None:
    route = [_dest("v1", port={"number": 80})]
    router, rest, _ = _router(_vs(route), _dr(LABELLED))
    router.set_weights(REF, _weights(10))
    (_, operations) = rest.patches[0]
    assert operations[1] == {"op": "add", "path": "/spec/http/1/route/0/weight", "value": 90}
    assert operations[2] == {
        "op": "add",
        "path": "/spec/http/1/route/-",
        "value": {
            "destination": {"host": "demo", "subset": "v2", "port": {"number": 80}},
            "weight": 10,
        },
    }


def test_a_split_already_live_is_not_written_again() -> None:
    router, rest, _ = _router(_vs([_dest("v1", 50), _dest("v2", 50)]), _dr(LABELLED))
    router.set_weights(REF, _weights(50))
    assert rest.patches == []


def test_a_missing_subset_with_labels_is_added_to_the_destination_rule_first() -> None:
    router, rest, _ = _router(
        _vs([_dest("v1", 100), _dest("v2", 0)]), _dr([{"name": "v1", "labels": {"version": "v1"}}])
    )
    router.set_weights(REF, _weights(10))
    assert rest.patches[0] == (
        DR_PATH,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "9"},
            {
                "op": "add",
                "path": "/spec/subsets/-",
                "value": {"name": "v2", "labels": {"version": "v2"}},
            },
        ],
    )
    assert rest.patches[1][0] == VS_PATH


def test_a_subset_missing_without_labels_or_with_other_labels_is_invalid_before_any_write() -> None:
    bare = RouteRef(**{**_fields(REF), "subsets": (SubsetRef("v1"), SubsetRef("v2"))})
    router, rest, _ = _router(
        _vs([_dest("v1", 100)]), _dr([{"name": "v1", "labels": {"version": "v1"}}])
    )
    # The problems come with the weights, which are still known (see below).
    [problem] = router.read(bare).problems
    assert "subset 'v2' is not defined" in problem
    with pytest.raises(InvalidSpec, match="subset 'v2' is not defined"):
        router.set_weights(bare, _weights(10))
    router, rest, _ = _router(
        _vs([_dest("v1", 100)]), _dr([{"name": "v1", "labels": {"version": "old"}}, LABELLED[1]])
    )
    assert "selects" in " ".join(router.read(REF).problems)
    assert rest.patches == []


def test_a_destination_rule_for_another_host_is_invalid() -> None:
    router, _, _ = _router(_vs([_dest("v1", 100)]), _dr(LABELLED, host="reviews"))
    assert "is for host 'reviews'" in " ".join(router.read(REF).problems)


def test_a_route_whose_destination_rule_went_wrong_can_still_go_back_to_stable() -> None:
    """A Canary made Invalid by its DestinationRule mid-rollout (or deleted then): the weights
    are read with the problems, and 100% to stable is written without adding any subset."""
    router, rest, _ = _router(
        _vs([_dest("v1", 80), _dest("v2", 20)]),
        _dr([{"name": "v1", "labels": {"version": "old"}}, LABELLED[1]]),
    )
    seen = router.read(REF)
    assert dict(seen.weights) == {"v1": 80, "v2": 20}
    assert seen.problems
    with pytest.raises(InvalidSpec, match="selects"):
        router.set_weights(REF, _weights(10))
    assert rest.patches == []
    router.set_weights(REF, _weights(0))
    assert [path for path, _ in rest.patches] == [VS_PATH]


def test_a_conflicting_write_refreshes_the_cache_and_is_retried_on_the_next_tick() -> None:
    router, rest, cache = _router(_vs([_dest("v1", 100), _dest("v2", 0)]), _dr(LABELLED))
    rest.fail_with = ApiError(422, "Invalid", "testing value /spec/http/1/route failed")
    newer = _vs([_dest("v1", 100), _dest("v2", 0)], version="7")
    rest.objects[VS_PATH] = newer
    with pytest.raises(Unavailable, match="changed while writing"):
        router.set_weights(REF, _weights(10))
    assert cache.of(VIRTUAL_SERVICE).get("shop", "demo") == newer


def test_read_gives_the_live_split() -> None:
    router, _, _ = _router(_vs([_dest("v1", 75), _dest("v2", 25)]), _dr(LABELLED))
    traffic = router.read(REF)
    assert dict(traffic.weights) == {"v1": 75, "v2": 25}
    assert traffic.applied


def test_the_weights_writer_is_the_latest_manager_of_the_http_list() -> None:
    vs = _vs([])
    vs["metadata"]["managedFields"] = [
        {
            "manager": "kubectl",
            "time": "2026-01-01T00:00:00Z",
            "fieldsV1": {"f:spec": {"f:hosts": {}}},
        },
        {
            "manager": "canary",
            "time": "2026-01-01T00:01:00Z",
            "fieldsV1": {"f:spec": {"f:http": {}}},
        },
        {
            "manager": "argocd",
            "time": "2026-01-01T00:02:00Z",
            "fieldsV1": {"f:spec": {"f:http": {}}},
        },
    ]
    assert weights_writer(vs) == "argocd"
    assert weights_writer(_vs([])) is None


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        (
            {
                "observedGeneration": 2,
                "updatedReplicas": 3,
                "availableReplicas": 3,
                "readyReplicas": 3,
            },
            True,
        ),
        (
            {
                "observedGeneration": 1,
                "updatedReplicas": 3,
                "availableReplicas": 3,
                "readyReplicas": 3,
            },
            False,
        ),
        (
            {
                "observedGeneration": 2,
                "updatedReplicas": 2,
                "availableReplicas": 3,
                "readyReplicas": 3,
            },
            False,
        ),
        ({}, False),
    ],
)
def test_deployment_readiness_follows_rollout_status(status: dict[str, int], ready: bool) -> None:
    body = {"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": status}
    assert deployment_ready(body) is ready


def _fields(ref: RouteRef) -> dict[str, Any]:
    return {name: getattr(ref, name) for name in RouteRef.__slots__}  # type: ignore[attr-defined]
