"""The weights a managed route gets in every shape, and how a written route reads back.

Istio's weights are relative (any total but 0): what matters is each subset's share of the
route's total, which is how Envoy splits. These tests judge by that share, worked out here from
the written numbers, not by the module's own reader alone.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canary.api import istio, weights


def _dest(subset: str | None, weight: Any = None, **extra: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"host": "reviews", **extra}
    if subset is not None:
        target["subset"] = subset
    entry: dict[str, Any] = {"destination": target}
    if weight is not None:
        entry["weight"] = weight
    return entry


def _vs(route: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": {"hosts": ["reviews"], "http": [{"route": route}], **spec},
    }


def _write(route: list[dict[str, Any]], canary_weight: int) -> list[dict[str, Any]]:
    vs = _vs(route)
    managed = istio.managed_route(vs, name=None, host="reviews", namespace="bookinfo")
    return istio.weighted_destinations(
        vs, managed, stable="v1", canary="v2", canary_weight=canary_weight
    )


def _share(entries: list[dict[str, Any]], subset: str) -> Fraction:
    """The subset's share of the traffic as Envoy splits it: its weights over the total."""
    total = sum(entry["weight"] for entry in entries)
    return Fraction(
        sum(e["weight"] for e in entries if e["destination"].get("subset") == subset), total
    )


def _read(entries: list[dict[str, Any]]) -> dict[str, int]:
    vs = _vs(entries)
    return istio.live_weights(istio.http_routes(vs)[0])


def test_one_stable_and_one_canary_destination_total_100() -> None:
    entries = _write([_dest("v1", 100), _dest("v2", 0)], 10)
    assert [entry["weight"] for entry in entries] == [90, 10]
    assert _read(entries) == {"v1": 90, "v2": 10}


def test_the_stable_subset_on_two_ports_gives_the_canary_exactly_its_share() -> None:
    """The issue's 90/90/10 shape: the canary got 10/190 = 5.3%."""
    route = [
        _dest("v1", 50, port={"number": 9080}),
        _dest("v1", 50, port={"number": 9081}),
        _dest("v2", 0, port={"number": 9080}),
    ]
    for step in (10, 25, 50, 100, 0):
        entries = _write(route, step)
        assert _share(entries, "v2") == Fraction(step, 100)
        assert _read(entries) == {"v1": 100 - step, "v2": step}
        # Ports and everything else as written.
        assert [e["destination"].get("port") for e in entries] == [
            {"number": 9080},
            {"number": 9081},
            {"number": 9080},
        ]
    assert [e["weight"] for e in _write(route, 10)] == [90, 90, 20]


def test_the_stable_share_keeps_its_written_proportions_from_step_to_step() -> None:
    route = [_dest("v1", 60), _dest("v1", 20), _dest("v2", 0)]
    for step in (5, 20, 60, 95):
        route = _write(route, step)
        first, second = route[0]["weight"], route[1]["weight"]
        assert Fraction(first, second) == 3
        assert _share(route, "v2") == Fraction(step, 100)


def test_stable_destinations_without_weights_share_equally() -> None:
    entries = _write([_dest("v1", port={"number": 1}), _dest("v1", port={"number": 2})], 30)
    assert [e["weight"] for e in entries] == [70, 70, 60]
    assert _read(entries) == {"v1": 70, "v2": 30}


def test_after_a_step_at_100_the_stable_destinations_share_equally_again() -> None:
    """All stable weights 0 leave no proportions to keep: equal is the one guess that says so."""
    entries = _write(_write([_dest("v1", 75), _dest("v1", 25)], 100), 0)
    assert [e["weight"] for e in entries] == [100, 100, 0]


def test_a_canary_on_two_destinations_keeps_its_own_proportions() -> None:
    entries = _write([_dest("v1", 100), _dest("v2", 0), _dest("v2", 0)], 10)
    assert [e["weight"] for e in entries] == [180, 10, 10]
    assert _share(entries, "v2") == Fraction(1, 10)


def test_any_other_destination_gets_nothing() -> None:
    entries = _write([_dest("v1", 50), _dest("v3", 30), _dest(None, 20)], 40)
    assert [e["weight"] for e in entries] == [60, 0, 0, 40]
    assert _read(entries) == {"v1": 60, "v3": 0, "": 0, "v2": 40}


def test_huge_written_proportions_are_brought_to_100_first() -> None:
    entries = _write([_dest("v1", 1_000_003), _dest("v1", 999_997), _dest("v2", 1)], 10)
    assert _share(entries, "v2") == Fraction(1, 10)
    assert max(e["weight"] for e in entries) < 10**6


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ([180, 20], {"v1": 90, "v2": 10}),
        ([9, 1], {"v1": 90, "v2": 10}),
        ([1, 0], {"v1": 100, "v2": 0}),
        # Not whole percentages: the nearest, yet some is never none and most never all.
        ([2, 1], {"v1": 67, "v2": 33}),
        ([999, 1], {"v1": 99, "v2": 1}),
        ([1, 999], {"v1": 1, "v2": 99}),
        # Istio refuses a total of 0; nothing reads as served.
        ([0, 0], {"v1": 0, "v2": 0}),
    ],
)
def test_live_weights_are_shares_of_whatever_total_was_written(
    written: list[int], read: dict[str, int]
) -> None:
    assert _read([_dest("v1", written[0]), _dest("v2", written[1])]) == read


def test_a_lone_destination_holds_everything_whatever_its_weight() -> None:
    assert _read([_dest("v1", 7)]) == {"v1": 100}
    route = istio.http_routes(_vs([_dest("v1", 7)]))[0]
    assert istio.relative_weights(route) == {"v1": 100}


def test_weights_istio_would_refuse_count_as_zero() -> None:
    route = istio.http_routes(_vs([_dest("v1", True), _dest("v1", -5), _dest("v2", "10")]))[0]
    assert istio.relative_weights(route) == {"v1": 0, "v2": 0}


def test_a_step_outside_0_100_is_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        weights.split(101, [1], [1])


@given(
    stable=st.lists(st.integers(0, 10**7), min_size=1, max_size=4),
    canary=st.lists(st.integers(0, 10**7), min_size=0, max_size=3),
    others=st.integers(0, 2),
    step=st.integers(0, 100),
)
def test_every_shape_gives_the_canary_exactly_its_step(
    stable: list[int], canary: list[int], others: int, step: int
) -> None:
    route = (
        [_dest("v1", w) for w in stable]
        + [_dest("v2", w) for w in canary]
        + [_dest("v9", 5)] * others
    )
    entries = _write(route, step)
    assert _share(entries, "v2") == Fraction(step, 100)
    assert _read(entries)["v2"] == step
    assert all(e["weight"] == 0 for e in entries if e["destination"]["subset"] == "v9")
    assert 0 < sum(e["weight"] for e in entries) < 2**31
    # Written again at the same step, nothing changes: no drift of our own making.
    assert _write(entries, step) == entries


def test_the_ingress_route_is_found_by_its_destinations_host() -> None:
    """A VirtualService in the gateway's namespace for an external host, bound to a Gateway,
    routing to the service in the app's namespace: its route is the service's route."""
    fqdn = "reviews.bookinfo.svc.cluster.local"
    vs = {
        "metadata": {"name": "shop", "namespace": "edge"},
        "spec": {
            "hosts": ["shop.example.com"],
            "gateways": ["ingress"],
            "http": [
                {"name": "static", "route": [{"destination": {"host": "cdn.example.net"}}]},
                {
                    "name": "reviews",
                    "route": [
                        {"destination": {"host": fqdn, "subset": "v1"}, "weight": 100},
                    ],
                },
            ],
        },
    }
    route = istio.managed_route(
        vs, name=None, host="reviews", namespace="edge", host_namespace="bookinfo"
    )
    assert route.name == "reviews"
    # A short `reviews` in that VirtualService would be reviews.edge, another service.
    with pytest.raises(istio.RouteProblem, match="all go to 'reviews'"):
        istio.managed_route(vs, name=None, host="reviews", namespace="edge", host_namespace="other")


def test_a_destination_that_is_not_an_object_is_named_not_raised() -> None:
    """Chosen by name (a default route needs every destination to name the host)."""
    vs = _vs([_dest("v1", 100), "v2"])  # type: ignore[list-item]
    vs["spec"]["http"][0]["name"] = "primary"
    route = istio.managed_route(vs, name="primary", host="reviews", namespace="bookinfo")
    with pytest.raises(istio.RouteProblem, match=r"spec.http\[0\].route\[1\]: not an object"):
        istio.weighted_destinations(vs, route, stable="v1", canary="v2", canary_weight=10)
