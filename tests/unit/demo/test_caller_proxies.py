"""Which Envoys the demo's preflight asks for the route: those istiod would program with it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from canary.demo.controller import caller_proxies
from canary.localmesh.mesh import LocalMesh

CLIENT, GATEWAY = "http://127.0.0.1:1", "http://127.0.0.1:2"


def mesh(*, gateway: bool) -> LocalMesh:
    edge = SimpleNamespace(admin_url=GATEWAY) if gateway else None
    return cast(LocalMesh, SimpleNamespace(admin_url=CLIENT, gateway=edge))


def virtual_service(*gateways: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": ["demo"], "http": [{"route": []}]}
    if gateways:
        spec["gateways"] = list(gateways)
    return {"kind": "VirtualService", "metadata": {"name": "demo"}, "spec": spec}


@pytest.mark.parametrize(
    ("gateway", "objects", "asked"),
    [
        (False, [virtual_service()], [CLIENT]),
        (False, [], [CLIENT]),
        (True, [virtual_service("istio-ingress/shop")], [GATEWAY]),
        (True, [virtual_service("istio-ingress/shop", "mesh")], [CLIENT, GATEWAY]),
        (True, [virtual_service()], [CLIENT]),
        # A Gateway named but none running: nothing to ask (preflight says "not checked").
        (False, [virtual_service("istio-ingress/shop")], []),
    ],
)
def test_the_envoys_that_serve_the_route_are_asked(
    gateway: bool, objects: list[dict[str, Any]], asked: list[str]
) -> None:
    assert caller_proxies(mesh(gateway=gateway), objects) == asked
