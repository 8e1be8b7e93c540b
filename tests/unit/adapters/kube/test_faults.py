"""The fault EnvoyFilters: the body we write, its percentages, the refusals, and the writes;
a fault for some pods only: the body, the one pod list at injection, and the refusal.

That istiod accepts the body and Envoy applies it is proven by tests/e2e/istio/test_chaos.py;
these pin the bytes and every rule that keeps a fault off the stable version.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from canary.adapters.kube import faults
from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import DESTINATION_RULE, ENVOY_FILTER, ApiError, Body
from canary.adapters.kube.router import KubeRouter
from canary.api import envoy_fault
from canary.engine.actions import Fault, InjectFault
from canary.engine.observation import ActiveFault
from canary.errors import InvalidSpec
from canary.ports import RouteRef, SubsetRef

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
REF = RouteRef(
    namespace="shop",
    virtual_service="demo",
    host="demo",
    route="primary",
    destination_rule="demo-dr",
    subsets=(SubsetRef("v1"), SubsetRef("v2")),
)
RULE: Body = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "demo-dr", "namespace": "shop", "resourceVersion": "3"},
    "spec": {
        "host": "demo",
        "subsets": [
            {"name": "v1", "labels": {"app": "demo", "version": "v1"}},
            {"name": "v2", "labels": {"app": "demo", "version": "v2"}},
            {"name": "bare"},
        ],
    },
}
EF_PATH = "/apis/networking.istio.io/v1alpha3/namespaces/shop/envoyfilters"
POD_PATH = "/api/v1/namespaces/shop/pods"


def _inject(
    abort: int | None = 503,
    percent: float = 100.0,
    delay: float | None = None,
    *,
    pods: int | None = None,
) -> InjectFault:
    return InjectFault(
        experiment="eject",
        subset="v2",
        fault=Fault(
            abort_status=abort,
            abort_percent=percent,
            delay_seconds=delay,
            delay_percent=percent if delay is not None else 0.0,
        ),
        expires_at=NOW + timedelta(seconds=30),
        pods=pods,
    )


def _pod(name: str, version: str = "v2", **meta: Any) -> Body:
    return {
        "metadata": {"name": name, "labels": {"app": "demo", "version": version}, **meta},
        "status": {"phase": "Pending"},
    }


class FakeApi:
    """EnvoyFilters by path, with resourceVersions and the API server's 404/409 answers; the
    namespace's pods, listed by label selector."""

    def __init__(self) -> None:
        self.pods: list[Body] = []
        self.objects: dict[str, Body] = {}
        self.requests: list[tuple[str, str]] = []
        self.version = 10

    def _stored(self, path: str, body: Body) -> Body:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[path] = stored
        return copy.deepcopy(stored)

    def post(self, path: str, body: Body) -> Body:
        self.requests.append(("POST", path))
        assert "resourceVersion" not in body["metadata"]
        target = f"{path}/{body['metadata']['name']}"
        if target in self.objects:
            raise ApiError(409, "AlreadyExists", "exists")
        return self._stored(target, body)

    def put(self, path: str, body: Body) -> Body:
        self.requests.append(("PUT", path))
        current = self.objects.get(path)
        if current is None:
            raise ApiError(404, "NotFound", "gone")
        if current["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise ApiError(409, "Conflict", "changed")
        return self._stored(path, body)

    def delete(self, path: str) -> Body:
        self.requests.append(("DELETE", path))
        if self.objects.pop(path, None) is None:
            raise ApiError(404, "NotFound", "gone")
        return {}

    def get_or_none(self, path: str) -> Body | None:
        self.requests.append(("GET", path))
        found = self.objects.get(path)
        return copy.deepcopy(found) if found is not None else None

    def get(self, path: str, **query: Any) -> Body:
        self.requests.append(("LIST", path))
        if path == POD_PATH:
            wanted = dict(term.split("=") for term in query["labelSelector"].split(","))
            return {
                "items": [
                    copy.deepcopy(pod)
                    for pod in self.pods
                    if wanted.items() <= pod["metadata"]["labels"].items()
                ],
                "metadata": {},
            }
        assert query["labelSelector"] == "app.kubernetes.io/managed-by=canary,canary.dev/fault-host"
        return {"items": [copy.deepcopy(body) for body in self.objects.values()], "metadata": {}}


def _router() -> tuple[KubeRouter, FakeApi, ClusterCache]:
    api = FakeApi()
    cache = ClusterCache(api)  # type: ignore[arg-type]
    cache.of(DESTINATION_RULE).remember(copy.deepcopy(RULE))
    return KubeRouter(api, cache), api, cache  # type: ignore[arg-type]


def test_the_envoy_filter_inserts_an_http_fault_before_the_router_of_the_canarys_inbound() -> None:
    body = faults.envoy_filter(REF, _inject(delay=1.5), {"app": "demo", "version": "v2"})
    assert body["apiVersion"] == "networking.istio.io/v1alpha3"
    assert body["metadata"] == {
        "name": "canary-fault-demo-dr",
        "namespace": "shop",
        "labels": {"app.kubernetes.io/managed-by": "canary", "canary.dev/fault-host": "demo"},
        "annotations": {
            "canary.dev/fault-host": "demo",
            "canary.dev/experiment": "eject",
            "canary.dev/subset": "v2",
            "canary.dev/expires-at": "2026-05-01T12:00:30Z",
        },
    }
    assert body["spec"] == {
        "workloadSelector": {"labels": {"app": "demo", "version": "v2"}},
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "SIDECAR_INBOUND",
                    "listener": {
                        "filterChain": {
                            "filter": {
                                "name": "envoy.filters.network.http_connection_manager",
                                "subFilter": {"name": "envoy.filters.http.router"},
                            }
                        }
                    },
                },
                "patch": {
                    "operation": "INSERT_BEFORE",
                    "value": {
                        "name": "canary.fault",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault"
                            ".v3.HTTPFault",
                            "abort": {
                                "http_status": 503,
                                "percentage": {"numerator": 100, "denominator": "HUNDRED"},
                            },
                            "delay": {
                                "fixed_delay": "1.5s",
                                "percentage": {"numerator": 100, "denominator": "HUNDRED"},
                            },
                        },
                    },
                },
            }
        ],
    }


@pytest.mark.parametrize(
    ("percent", "numerator", "denominator"),
    [
        (100, 100, "HUNDRED"),
        (7.0, 7, "HUNDRED"),
        (0.5, 50, "TEN_THOUSAND"),
        (0.1, 10, "TEN_THOUSAND"),
        (12.34, 1234, "TEN_THOUSAND"),
        (0.001, 10, "MILLION"),
        (33.3333, 333333, "MILLION"),
        (0.0001, 1, "MILLION"),
        # Finer than a millionth: the nearest millionth.
        (1 / 3, 3333, "MILLION"),
    ],
)
def test_percentages_take_the_coarsest_denominator_that_holds_them(
    percent: float, numerator: int, denominator: str
) -> None:
    assert envoy_fault.fractional(percent) == {
        "numerator": numerator,
        "denominator": denominator,
    }


@pytest.mark.parametrize("percent", [0.0, -1.0, 100.5, 0.00001])
def test_a_percentage_envoy_cannot_express_is_refused(percent: float) -> None:
    with pytest.raises(ValueError, match=r"%|percentage"):
        envoy_fault.fractional(percent)
    with pytest.raises(InvalidSpec):
        faults.http_fault(Fault(abort_status=503, abort_percent=percent))


def test_a_delay_alone_has_no_abort_and_its_duration_is_protobuf_json() -> None:
    config = faults.http_fault(Fault(delay_seconds=0.25, delay_percent=0.5))
    assert config == {
        "delay": {
            "fixed_delay": "0.25s",
            "percentage": {"numerator": 50, "denominator": "TEN_THOUSAND"},
        }
    }
    assert envoy_fault.proto_duration(2.0) == "2s"
    with pytest.raises(InvalidSpec):
        faults.http_fault(Fault())


@pytest.mark.parametrize(
    ("subset", "why"),
    [
        ("v1", "is the stable one"),
        ("v3", "is not the canary's"),
        ("bare", "has no labels"),
    ],
)
def test_a_fault_for_the_stable_an_unknown_or_an_unlabelled_subset_writes_nothing(
    subset: str, why: str
) -> None:
    router, api, _ = _router()
    ref = REF
    if subset == "bare":
        ref = dataclasses.replace(REF, subsets=(SubsetRef("v1"), SubsetRef("bare")))
    fault = InjectFault("eject", subset, Fault(abort_status=503, abort_percent=1), NOW)
    with pytest.raises(InvalidSpec, match=why):
        router.inject(ref, fault)
    assert api.requests == []


def test_a_subset_missing_from_the_destination_rule_or_labelled_otherwise_is_refused() -> None:
    router, api, cache = _router()
    rule = copy.deepcopy(RULE)
    rule["spec"]["subsets"] = rule["spec"]["subsets"][:1]
    rule["metadata"]["resourceVersion"] = "4"
    cache.of(DESTINATION_RULE).remember(rule)
    with pytest.raises(InvalidSpec, match="not defined in DestinationRule shop/demo-dr"):
        router.inject(REF, _inject())
    cache.of(DESTINATION_RULE).remember(
        {**RULE, "metadata": {**RULE["metadata"], "resourceVersion": "5"}}
    )
    other = dataclasses.replace(
        REF, subsets=(SubsetRef("v1"), SubsetRef("v2", (("version", "v2"),)))
    )
    with pytest.raises(InvalidSpec, match="the Canary says"):
        router.inject(other, _inject())
    without_rule = dataclasses.replace(REF, destination_rule=None)
    with pytest.raises(InvalidSpec, match="needs the DestinationRule"):
        router.inject(without_rule, _inject())
    assert api.requests == []


def test_inject_creates_then_replaces_and_faults_reads_it_back_from_the_cache() -> None:
    router, api, _ = _router()
    router.inject(REF, _inject())
    assert api.requests == [("POST", EF_PATH)]
    assert router.faults(REF) == (ActiveFault("eject", "v2", NOW + timedelta(seconds=30)),)

    router.inject(REF, _inject(percent=50))
    assert api.requests[-1] == ("PUT", f"{EF_PATH}/canary-fault-demo-dr")
    stored = api.objects[f"{EF_PATH}/canary-fault-demo-dr"]
    config = stored["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]
    assert config["abort"]["percentage"] == {"numerator": 50, "denominator": "HUNDRED"}

    router.clear_faults(REF)
    assert api.requests[-1] == ("DELETE", f"{EF_PATH}/canary-fault-demo-dr")
    assert router.faults(REF) == ()
    router.clear_faults(REF)
    assert api.requests[-1] == ("DELETE", f"{EF_PATH}/canary-fault-demo-dr")


def test_a_cache_behind_the_server_costs_a_read_and_one_more_write() -> None:
    router, api, cache = _router()
    router.inject(REF, _inject())
    # Someone changed it since: our PUT conflicts, we read theirs and replace it.
    api.objects[f"{EF_PATH}/canary-fault-demo-dr"]["metadata"]["resourceVersion"] = "99"
    router.inject(REF, _inject())
    assert [verb for verb, _ in api.requests] == ["POST", "PUT", "GET", "PUT"]

    # A user's EnvoyFilter of that name (no canary label) is never replaced.
    api.objects[f"{EF_PATH}/canary-fault-demo-dr"]["metadata"]["labels"] = {}
    cache.of(ENVOY_FILTER).forget("shop", "canary-fault-demo-dr")
    with pytest.raises(InvalidSpec, match="is not canary's"):
        router.inject(REF, _inject())
    assert api.requests[-2:] == [("POST", EF_PATH), ("GET", f"{EF_PATH}/canary-fault-demo-dr")]


def test_sweep_removes_the_expired_and_the_unreadable_and_keeps_the_rest() -> None:
    router, api, _ = _router()
    for name, expiry in (("past", "2026-05-01T11:59:59Z"), ("future", "2026-05-01T12:05:00Z"),
                         ("garbled", "soon"), ("naive", "2026-05-01T13:00:00")):  # fmt: skip
        api.objects[
            f"/apis/networking.istio.io/v1alpha3/namespaces/ns-{name}/envoyfilters/f-{name}"
        ] = {
            "metadata": {
                "name": f"f-{name}",
                "namespace": f"ns-{name}",
                "annotations": {"canary.dev/expires-at": expiry},
            }
        }
    assert router.sweep_faults(NOW) == (
        "ns-past/f-past",
        "ns-garbled/f-garbled",
        "ns-naive/f-naive",
    )
    assert [path for verb, path in api.requests if verb == "DELETE"] == [
        f"/apis/networking.istio.io/v1alpha3/namespaces/ns-{name}/envoyfilters/f-{name}"
        for name in ("past", "garbled", "naive")
    ]


def test_long_hosts_become_valid_label_values_and_distinct_ones_stay_distinct() -> None:
    assert faults.label_value("demo.shop.svc.cluster.local") == "demo.shop.svc.cluster.local"
    long_a = "a" * 60 + ".shop.svc.cluster.local"
    long_b = "a" * 60 + ".shop2.svc.cluster.local"
    assert len(faults.label_value(long_a)) <= 63
    assert faults.label_value(long_a) != faults.label_value(long_b)
    assert faults.label_value("*.example.com").startswith("example.com-")


def test_a_fault_for_some_pods_has_one_patch_per_pod_matching_its_proxys_name() -> None:
    labels = {"app": "demo", "version": "v2"}
    whole = faults.envoy_filter(REF, _inject(), labels)
    body = faults.envoy_filter(REF, _inject(pods=2), labels, pods=("demo-v2-a", "demo-v2-b"))
    assert body["metadata"]["annotations"]["canary.dev/pods"] == "demo-v2-a,demo-v2-b"
    # Still only the canary subset's workloads, whichever pods are named.
    assert body["spec"]["workloadSelector"] == {"labels": labels}
    patches = body["spec"]["configPatches"]
    assert [patch["match"]["proxy"] for patch in patches] == [
        {"metadata": {"NAME": "demo-v2-a"}},
        {"metadata": {"NAME": "demo-v2-b"}},
    ]
    # Otherwise each is the patch for the whole subset.
    (every,) = whole["spec"]["configPatches"]
    assert "proxy" not in every["match"]
    for patch in patches:
        unnarrowed = {key: value for key, value in patch["match"].items() if key != "proxy"}
        assert {**patch, "match": unnarrowed} == every
    assert "canary.dev/pods" not in whole["metadata"]["annotations"]
    with pytest.raises(ValueError, match="at least one"):
        faults.envoy_filter(REF, _inject(pods=1), labels, pods=())


def test_inject_for_one_pod_lists_the_subsets_pods_once_and_faults_the_first_by_name() -> None:
    router, api, _ = _router()
    api.pods = [_pod("demo-v2-b"), _pod("demo-v2-a"), _pod("demo-v1-a", version="v1")]
    router.inject(REF, _inject(pods=1))
    assert api.requests == [("LIST", POD_PATH), ("POST", EF_PATH)]
    stored = api.objects[f"{EF_PATH}/canary-fault-demo-dr"]
    assert stored["metadata"]["annotations"]["canary.dev/pods"] == "demo-v2-a"
    assert [p["match"]["proxy"] for p in stored["spec"]["configPatches"]] == [
        {"metadata": {"NAME": "demo-v2-a"}}
    ]
    assert router.faults(REF) == (ActiveFault("eject", "v2", NOW + timedelta(seconds=30)),)

    # Asking for more pods than the subset has faults those it has.
    router.inject(REF, _inject(pods=5))
    stored = api.objects[f"{EF_PATH}/canary-fault-demo-dr"]
    assert stored["metadata"]["annotations"]["canary.dev/pods"] == "demo-v2-a,demo-v2-b"


def test_injecting_again_keeps_the_pods_chosen_while_they_are_alive() -> None:
    router, api, _ = _router()
    api.pods = [_pod("demo-v2-b"), _pod("demo-v2-c")]

    def chosen(experiment: str = "eject") -> str:
        router.inject(REF, dataclasses.replace(_inject(pods=1), experiment=experiment))
        stored = api.objects[f"{EF_PATH}/canary-fault-demo-dr"]
        return str(stored["metadata"]["annotations"]["canary.dev/pods"])

    assert chosen() == "demo-v2-b"
    # A pod that sorts first appears: the experiment's fault stays where it is...
    api.pods.append(_pod("demo-v2-a"))
    assert chosen() == "demo-v2-b"
    # ...and another experiment chooses afresh.
    assert chosen("other") == "demo-v2-a"
    # The chosen pod is being deleted: the fault moves to the first alive one.
    api.pods[-1]["metadata"]["deletionTimestamp"] = "2026-05-01T12:00:00Z"
    assert chosen("other") == "demo-v2-b"


def test_a_fault_for_some_pods_of_a_subset_without_pods_writes_nothing() -> None:
    router, api, _ = _router()
    api.pods = [
        _pod("demo-v1-a", version="v1"),
        _pod("demo-v2-gone", deletionTimestamp="2026-05-01T11:59:00Z"),
        {**_pod("demo-v2-done"), "status": {"phase": "Succeeded"}},
    ]
    with pytest.raises(
        InvalidSpec, match=r"no pod of subset v2 \(labels app=demo,version=v2\) found"
    ):
        router.inject(REF, _inject(pods=1))
    assert api.requests == [("LIST", POD_PATH)]
