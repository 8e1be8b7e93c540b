"""Which pods a fault for some of them goes to: alive ones, the first by name, the kept first."""

from __future__ import annotations

import random
from typing import Any

import pytest

from canary.adapters.kube import pods
from canary.adapters.kube.rest import Body
from canary.errors import InvalidSpec


def _pod(name: str, phase: str = "Running", **meta: Any) -> Body:
    return {"metadata": {"name": name, **meta}, "status": {"phase": phase}}


def test_the_first_alive_pods_by_name_whatever_the_order_listed() -> None:
    listed = [
        _pod("v2-d"),
        _pod("v2-a", deletionTimestamp="2026-05-01T12:00:00Z"),
        _pod("v2-b", phase="Failed"),
        _pod("v2-c", phase="Succeeded"),
        # Pending and Unknown pods count: their sidecar takes the fault once it connects.
        _pod("v2-f", phase="Pending"),
        _pod("v2-e", phase="Unknown"),
        {"metadata": {}},
    ]
    for seed in range(5):
        random.Random(seed).shuffle(listed)
        assert pods.choose(listed, 2) == ("v2-d", "v2-e")
    assert pods.choose(listed, 10) == ("v2-d", "v2-e", "v2-f")
    assert pods.choose([], 1) == ()
    with pytest.raises(ValueError, match="at least one"):
        pods.choose(listed, 0)


def test_pods_kept_from_before_come_first_while_alive() -> None:
    listed = [_pod("a"), _pod("b"), _pod("c"), _pod("d", deletionTimestamp="now")]
    assert pods.choose(listed, 1, keep=("c",)) == ("c",)
    assert pods.choose(listed, 2, keep=("c",)) == ("a", "c")
    # Fewer wanted than kept: the first of the kept by name.
    assert pods.choose(listed, 1, keep=("c", "b")) == ("b",)
    # A kept pod that is gone or going is replaced.
    assert pods.choose(listed, 2, keep=("d", "x", "c")) == ("a", "c")


class FakeRest:
    """Pods in pages of two, as a server with `limit` would hand them out."""

    def __init__(self, listed: list[Body]) -> None:
        self.listed = listed
        self.queries: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str, **query: Any) -> Body:
        self.queries.append((path, query))
        start = int(query.get("continue", 0))
        token = str(start + 2) if start + 2 < len(self.listed) else ""
        return {"items": self.listed[start : start + 2], "metadata": {"continue": token}}


def test_chosen_lists_every_page_with_the_subsets_labels() -> None:
    rest = FakeRest([_pod("v2-e"), _pod("v2-d"), _pod("v2-c"), _pod("v2-b"), _pod("v2-a")])
    labels = {"version": "v2", "app": "demo"}
    found = pods.chosen(rest, "shop", labels, 2, subset="v2")  # type: ignore[arg-type]
    assert found == ("v2-a", "v2-b")
    assert [path for path, _ in rest.queries] == ["/api/v1/namespaces/shop/pods"] * 3
    assert {query["labelSelector"] for _, query in rest.queries} == {"app=demo,version=v2"}


def test_no_alive_pod_is_refused_with_the_selector_it_used() -> None:
    rest = FakeRest([_pod("v2-a", phase="Succeeded")])
    with pytest.raises(InvalidSpec, match=r"no pod of subset v2 \(labels app=demo,version=v2\)"):
        pods.chosen(rest, "shop", {"app": "demo", "version": "v2"}, 1, subset="v2")  # type: ignore[arg-type]
