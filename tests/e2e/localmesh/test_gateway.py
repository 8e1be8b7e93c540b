"""The local mesh's ingress gateway, for real: Gateway + VirtualService pushed to a gateway Envoy,
requests through it over HTTP and HTTPS counted per version, its certificate checked, its stats
and its Prometheus series read, and the client side left without the gateway's route."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from canary.localmesh import mesh
from canary.localmesh.gateway import GatewaySpec
from canary.localmesh.loadgen import NamedTLSConnection
from tests.e2e.answers import check_share

SHOP = "shop.example.test"
Json = dict[str, Any]


def _gateway() -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "ingress", "namespace": "istio-ingress"},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": [f"*/{SHOP}"],
                },
                {
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": [SHOP],
                    "tls": {"mode": "SIMPLE", "credentialName": "shop-cert"},
                },
            ],
        },
    }


def _virtual_service(v1: int, v2: int) -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "shop", "namespace": "istio-ingress"},
        "spec": {
            "hosts": [SHOP],
            "gateways": ["ingress"],
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {
                            "destination": {"host": "demo.default.svc.cluster.local", "subset": s},
                            "weight": w,
                        }
                        for s, w in (("v1", v1), ("v2", v2))
                    ],
                }
            ],
        },
    }


RULE: Json = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "demo", "namespace": "default"},
    "spec": {
        "host": "demo",
        "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2")],
    },
}


@pytest.fixture(scope="module")
def local() -> Iterator[mesh.LocalMesh]:
    with mesh.LocalMesh(
        service="demo",
        versions=[mesh.VersionSpec("v1"), mesh.VersionSpec("v2")],
        rate=0,
        instances_per_version=1,
        gateway=GatewaySpec(),
    ) as started:
        yield started


def _push(local: mesh.LocalMesh, v1: int, v2: int) -> None:
    version = local.push([_virtual_service(v1, v2)], [RULE], [_gateway()])
    deadline = time.monotonic() + 15
    while (applied := local.applied_version()) is None or applied < version:
        assert time.monotonic() < deadline, "the gateway did not serve the push within 15 s"
        time.sleep(0.1)


def _versions(connect: Any, count: int) -> Counter[str]:
    answers: Counter[str] = Counter()
    connection = connect()
    for _ in range(count):
        connection.request("GET", "/", headers={"Host": SHOP})
        response = connection.getresponse()
        body = response.read()
        answers[
            json.loads(body)["version"] if response.status == 200 else str(response.status)
        ] += 1
    connection.close()
    return answers


def _http(local: mesh.LocalMesh) -> Any:
    assert local.gateway is not None
    return lambda: http.client.HTTPConnection("127.0.0.1", local.gateway.http_port, timeout=5)


def _https(local: mesh.LocalMesh, name: str = SHOP) -> Any:
    assert local.gateway is not None
    trust = ssl.create_default_context(cafile=str(local.gateway.ca_root))
    return lambda: NamedTLSConnection(
        "127.0.0.1", local.gateway.https_port, timeout=5, context=trust, server_name=name
    )


def _stats(local: mesh.LocalMesh) -> dict[str, int]:
    assert local.gateway is not None
    with urllib.request.urlopen(f"{local.gateway.admin_url}/stats?format=json", timeout=5) as r:
        return {
            s["name"]: s["value"] for s in json.load(r)["stats"] if isinstance(s.get("value"), int)
        }


def test_requests_through_the_gateway_split_by_the_virtual_service(local: mesh.LocalMesh) -> None:
    _push(local, 70, 30)
    before = _stats(local)
    plain = _versions(_http(local), 300)
    assert not check_share(plain, "v2", 30, versions={"v1", "v2"}), plain
    secure = _versions(_https(local), 200)
    assert not check_share(secure, "v2", 30, versions={"v1", "v2"}), secure
    _push(local, 0, 100)
    assert _versions(_https(local), 30) == Counter({"v2": 30})
    assert _versions(_http(local), 30) == Counter({"v2": 30})
    # The gateway's own counters saw exactly these requests, the HTTPS ones after handshakes.
    after = _stats(local)
    assert local.gateway is not None
    http_prefix = f"http.outbound_0.0.0.0_{local.gateway.http_port}"
    https_prefix = f"http.outbound_0.0.0.0_{local.gateway.https_port}"
    served = {
        prefix: after[f"{prefix}.downstream_rq_2xx"] - before.get(f"{prefix}.downstream_rq_2xx", 0)
        for prefix in (http_prefix, https_prefix)
    }
    assert served == {http_prefix: 330, https_prefix: 230}
    handshakes = f"listener.127.0.0.1_{local.gateway.https_port}.ssl.handshake"
    assert after[handshakes] - before.get(handshakes, 0) == 2


def test_the_gateway_certificate_is_the_external_hosts_and_trusted_through_the_mesh_ca(
    local: mesh.LocalMesh,
) -> None:
    _push(local, 100, 0)
    assert local.gateway is not None
    trust = ssl.create_default_context(cafile=str(local.gateway.ca_root))
    address = ("127.0.0.1", local.gateway.https_port)
    with (
        socket.create_connection(address, timeout=5) as raw,
        trust.wrap_socket(raw, server_hostname=SHOP) as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None
    assert cert["subjectAltName"] == (("DNS", SHOP),)
    # Another name: no server of the Gateway answers to it (no filter chain for its SNI).
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _versions(_https(local, "other.example.test"), 1)
    # Without the mesh's root the certificate is not trusted.
    with (
        socket.create_connection(address, timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname=SHOP)


def test_a_host_the_gateway_does_not_serve_gets_404_and_the_client_side_no_gateway_route(
    local: mesh.LocalMesh,
) -> None:
    _push(local, 100, 0)
    assert local.gateway is not None
    connection = http.client.HTTPConnection("127.0.0.1", local.gateway.http_port, timeout=5)
    connection.request("GET", "/", headers={"Host": "other.example.test"})
    assert connection.getresponse().status == 404
    connection.close()
    with urllib.request.urlopen(f"{local.admin_url}/config_dump", timeout=5) as response:
        assert SHOP not in response.read().decode()


def test_prometheus_scrapes_the_gateway(local: mesh.LocalMesh) -> None:
    _push(local, 100, 0)
    _versions(_http(local), 10)
    query = (
        "sum(envoy_http_downstream_rq_total"
        '{job="gateway",envoy_http_conn_manager_prefix=~"outbound_.*"})'
    )
    url = f"{local.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    deadline = time.monotonic() + 15
    value = 0.0
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.load(response)["data"]["result"]
        value = float(result[0]["value"][1]) if result else 0.0
        if value >= 10:
            break
        time.sleep(0.5)
    assert value >= 10
