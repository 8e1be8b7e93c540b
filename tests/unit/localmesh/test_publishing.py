"""One mesh version over the client side and the gateway: both translated before either writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canary.localmesh import pilot
from canary.localmesh.certs import LocalCA
from canary.localmesh.gateway import GatewayPublisher, GatewaySpec, LocalGateway
from canary.localmesh.pilot.gateway import Listen
from canary.localmesh.publishing import Publishing
from tests.unit.localmesh.pilot.objects import demo_workloads
from tests.unit.localmesh.pilot.test_gateway import RULE, SHOP, _gateway, _http, _vs


def _client(tmp_path: Path) -> pilot.Pilot:
    return pilot.Pilot(
        xds_dir=tmp_path / "client", listener_port=1, workloads=demo_workloads("v1", "v2")
    )


def _with_gateway(tmp_path: Path) -> tuple[Publishing, GatewayPublisher]:
    publisher = GatewayPublisher(
        xds_dir=tmp_path / "gateway",
        spec=GatewaySpec(),
        listen={80: Listen(2, https=False)},
        workloads=demo_workloads("v1", "v2"),
        ca=LocalCA.create(tmp_path / "ca"),
    )
    # Only the publisher is used until something asks an Envoy; no process is started here.
    gateway: Any = LocalGateway(None, publisher, 2, 3, tmp_path / "ca" / "root-cert.pem")  # type: ignore[arg-type]
    return Publishing(_client(tmp_path), client_admin="", gateway=gateway), publisher


def test_without_a_gateway_a_gateway_only_virtual_service_is_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    publishing = Publishing(_client(tmp_path), client_admin="", gateway=None)
    first = publishing.push([], [RULE], [])
    before = (tmp_path / "client" / "cds.json").read_text()
    with pytest.raises(pilot.TranslationError) as raised:
        publishing.push([_vs(SHOP, gateways=["istio-ingress/ingress"])], [RULE], [_gateway()])
    assert [p.split(": ")[0] for p in raised.value.problems] == [
        "VirtualService default/shop spec.gateways",
        "Gateway istio-ingress/ingress",
    ]
    assert (tmp_path / "client" / "cds.json").read_text() == before
    assert publishing.push([], [RULE], []) == first


def test_a_change_on_either_side_is_one_new_mesh_version(tmp_path: Path) -> None:
    publishing, publisher = _with_gateway(tmp_path)
    gateways = [_gateway(_http("*"))]
    first = publishing.push([_vs(SHOP, gateways=["istio-ingress/ingress"])], [RULE], gateways)
    assert (
        publishing.push([_vs(SHOP, gateways=["istio-ingress/ingress"])], [RULE], gateways) == first
    )
    at_gateway = publisher.version
    moved = _vs(SHOP, gateways=["istio-ingress/ingress"])
    moved["spec"]["http"][0]["route"][0]["weight"] = 50
    assert publishing.push([moved], [RULE], gateways) == first + 1
    assert publisher.version == at_gateway + 1


def test_a_refusal_by_the_gateway_writes_neither_side(tmp_path: Path) -> None:
    publishing, publisher = _with_gateway(tmp_path)
    publishing.push([], [RULE], [])
    client_files = sorted(p.read_text() for p in (tmp_path / "client").glob("*.json"))
    at_gateway = publisher.version
    broken = _gateway(_http("*", number=8080))  # a port the gateway does not listen on
    mesh_route = _vs("demo", gateways=["mesh"])
    with pytest.raises(pilot.TranslationError):
        publishing.push([mesh_route], [RULE], [broken])
    assert sorted(p.read_text() for p in (tmp_path / "client").glob("*.json")) == client_files
    assert publisher.version == at_gateway
