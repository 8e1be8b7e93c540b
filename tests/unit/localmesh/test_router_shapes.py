"""The local router on an ingress VirtualService in another namespace with the stable subset on
two ports: it finds, writes and reads the route where the Canary says it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canary.engine.actions import SetWeights
from canary.localmesh.router import LocalRouter
from canary.localmesh.store import LocalStore
from canary.ports import RouteRef
from tests.unit.localmesh.test_store_router import FakePlane

FQDN = "demo.default.svc.cluster.local"
REF = RouteRef(
    namespace="default",
    virtual_service="storefront",
    host="demo",
    route=None,
    virtual_service_namespace="edge",
)


def _dest(subset: str, weight: int, port: int) -> dict[str, Any]:
    return {
        "destination": {"host": FQDN, "subset": subset, "port": {"number": port}},
        "weight": weight,
    }


def test_the_route_in_another_namespace_gets_the_canary_its_exact_share(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    store.put(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "storefront", "namespace": "edge"},
            "spec": {
                "hosts": ["shop.example.test"],
                "gateways": ["ingress"],
                "http": [{"route": [_dest("v1", 100, 8080), _dest("v1", 100, 8081)]}],
            },
        }
    )
    plane = FakePlane()
    router = LocalRouter(store, plane)
    router.set_weights(REF, SetWeights("v1", "v2", 25))
    written = store.get("VirtualService", "edge", "storefront")
    assert written is not None
    assert written["spec"]["http"][0]["route"] == [
        _dest("v1", 75, 8080),
        _dest("v1", 75, 8081),
        _dest("v2", 50, 8080),
    ]
    plane.acknowledged = len(plane.pushed)
    traffic = router.read(REF)
    assert dict(traffic.weights) == {"v1": 75, "v2": 25}
    assert traffic.applied
    assert store.get("VirtualService", "default", "storefront") is None
