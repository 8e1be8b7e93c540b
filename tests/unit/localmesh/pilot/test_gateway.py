"""Gateway + VirtualService through the Pilot's gateway translation, held to istiod's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canary.localmesh import pilot
from canary.localmesh.pilot import gateway
from canary.localmesh.pilot.gateway import Listen
from tests.unit.localmesh.pilot.objects import Json, bookinfo_workloads, demo_workloads, sample

LABELS = {"istio": "ingressgateway"}
LISTEN = {80: Listen(18080, https=False), 443: Listen(18443, https=True)}
SHOP = "shop.example.test"


def _gateway(*servers: Json, namespace: str = "istio-ingress", name: str = "ingress") -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": dict(LABELS), "servers": list(servers)},
    }


def _http(*hosts: str, number: int = 80) -> Json:
    return {"port": {"number": number, "name": "http", "protocol": "HTTP"}, "hosts": list(hosts)}


def _https(*hosts: str, tls: Json | None = None) -> Json:
    return {
        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
        "hosts": list(hosts),
        "tls": tls if tls is not None else {"mode": "SIMPLE", "credentialName": "shop-cert"},
    }


def _vs(*hosts: str, gateways: list[str], namespace: str = "default", name: str = "shop") -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": list(hosts),
            "gateways": gateways,
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {
                            "destination": {"host": "demo.default.svc.cluster.local", "subset": s},
                            "weight": w,
                        }
                        for s, w in (("v1", 90), ("v2", 10))
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

issued: list[tuple[str, tuple[str, ...]]] = []


def _credentials(name: str, hosts: tuple[str, ...]) -> tuple[Path, Path]:
    issued.append((name, hosts))
    return Path(f"/certs/{name}-chain.pem"), Path(f"/certs/{name}-key.pem")


def _translate(
    gateways: list[Json],
    services: list[Json],
    *,
    workloads: Any = None,
    listen: Any = None,
    port: int = 80,
    rules: list[Json] | None = None,
) -> gateway.GatewayResources:
    return gateway.translate_gateway(
        gateways,
        services,
        [RULE] if rules is None else rules,
        demo_workloads("v1", "v2") if workloads is None else workloads,
        labels=LABELS,
        listen=LISTEN if listen is None else listen,
        credentials=_credentials,
        service_port=port,
        rds_source=lambda name: {"path_config_source": {"path": f"/xds/{name}.json"}},
    )


def _problems(gateways: list[Json], services: list[Json], **kwargs: Any) -> list[str]:
    with pytest.raises(pilot.TranslationError) as raised:
        _translate(gateways, services, **kwargs)
    return [problem.split(": ")[0] for problem in raised.value.problems]


def _routes(resources: gateway.GatewayResources) -> dict[str, list[str]]:
    """Each route configuration's virtual hosts: name -> [vhost name (domains)]."""
    return {
        config["name"]: [f"{vh['name']} {vh['domains']}" for vh in config["virtual_hosts"]]
        for config in resources.route_configurations
    }


def test_the_ingress_shape_serves_the_external_host_on_http_and_https() -> None:
    issued.clear()
    resources = _translate(
        [_gateway(_http(f"*/{SHOP}"), _https(SHOP))],
        [_vs(SHOP, gateways=["istio-ingress/ingress"])],
    )
    assert _routes(resources) == {
        "http.80": [f"{SHOP}:80 ['{SHOP}']"],
        "https.443.https.ingress.istio-ingress": [f"{SHOP}:443 ['{SHOP}']"],
    }
    route = resources.route_configurations[0]["virtual_hosts"][0]["routes"][0]
    weighted = route["route"]["weighted_clusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in weighted] == [
        ("outbound|80|v1|demo.default.svc.cluster.local", 90),
        ("outbound|80|v2|demo.default.svc.cluster.local", 10),
    ]
    assert {c["name"] for c in resources.clusters} == {
        f"outbound|80|{s}|demo.default.svc.cluster.local" for s in ("", "v1", "v2")
    }
    http_listener, https_listener = resources.listeners
    assert http_listener["name"] == "0.0.0.0_18080"
    manager = http_listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["stat_prefix"] == "outbound_0.0.0.0_18080"
    assert manager["rds"]["route_config_name"] == "http.80"
    (chain,) = https_listener["filter_chains"]
    assert chain["filter_chain_match"] == {"server_names": [SHOP]}
    context = chain["transport_socket"]["typed_config"]["common_tls_context"]
    assert context["tls_certificates"][0]["certificate_chain"]["filename"] == (
        "/certs/shop-cert-chain.pem"
    )
    assert issued == [("shop-cert", (SHOP,))]


def test_bookinfo_gateway_sample_routes_every_host_to_productpage() -> None:
    documents = sample("bookinfo-gateway.yaml")
    resources = _translate(
        [d for d in documents if d["kind"] == "Gateway"],
        [d for d in documents if d["kind"] == "VirtualService"],
        workloads=bookinfo_workloads(),
        listen={8080: Listen(18080, https=False)},
        port=9080,
        rules=[],
    )
    assert _routes(resources) == {"http.8080": ["*:8080 ['*']"]}
    routes = resources.route_configurations[0]["virtual_hosts"][0]["routes"]
    assert [{k: v for k, v in r["match"].items() if k != "case_sensitive"} for r in routes] == [
        {"path": "/productpage"},
        {"prefix": "/static"},
        {"path": "/login"},
        {"path": "/logout"},
        {"prefix": "/api/v1/products"},
    ]
    assert {r["route"]["cluster"] for r in routes} == {
        "outbound|9080||productpage.default.svc.cluster.local"
    }
    # Only the services the gateway routes to (no DestinationRule here: no subsets).
    assert [c["name"] for c in resources.clusters] == [
        "outbound|9080||productpage.default.svc.cluster.local"
    ]


def test_certmanager_sample_is_refused_for_its_service_outside_the_mesh() -> None:
    documents = sample("certmanager-gateway.yaml")
    problems = _problems(
        [d for d in documents if d["kind"] == "Gateway"],
        [d for d in documents if d["kind"] == "VirtualService"],
        workloads=bookinfo_workloads(),
        port=9080,
        rules=[],
    )
    assert problems == [
        "VirtualService istio-system/cert-manager spec.http[0].route[0].destination.port.number",
        "VirtualService istio-system/cert-manager spec.http[0].route[0].destination.host",
    ]


@pytest.mark.parametrize(
    ("written", "vs_namespace", "bound"),
    [
        ("ingress", "istio-ingress", True),  # a short name is the VirtualService's namespace's
        ("ingress", "default", False),
        ("istio-ingress/ingress", "default", True),
        ("./ingress", "istio-ingress", True),
        ("ingress.istio-ingress.svc.cluster.local", "default", True),  # the legacy FQDN form
    ],
)
def test_a_virtual_service_binds_to_the_gateway_its_gateways_name(
    written: str, vs_namespace: str, bound: bool
) -> None:
    gateways = [_gateway(_http("*"))]
    services = [_vs(SHOP, gateways=[written], namespace=vs_namespace)]
    if bound:
        assert _routes(_translate(gateways, services)) == {"http.80": [f"{SHOP}:80 ['{SHOP}']"]}
    else:
        assert _problems(gateways, services) == [
            f"VirtualService {vs_namespace}/shop spec.gateways[0]"
        ]


@pytest.mark.parametrize(
    ("server_hosts", "vs_hosts", "served"),
    [
        (["*"], [SHOP], [SHOP]),
        (["*.example.test"], [SHOP], [SHOP]),
        ([SHOP], ["*.example.test"], [SHOP]),
        (["*"], ["*.example.test"], ["*.example.test"]),
        (["other.example.test"], [SHOP], []),
        (["default/" + SHOP], [SHOP], [SHOP]),  # this namespace's VirtualServices only
        (["elsewhere/" + SHOP], [SHOP], []),
        (["*/" + SHOP], [SHOP], [SHOP]),
    ],
)
def test_a_server_serves_the_hosts_both_it_and_the_virtual_service_name(
    server_hosts: list[str], vs_hosts: list[str], served: list[str]
) -> None:
    resources = _translate(
        [_gateway(_http(*server_hosts))], [_vs(*vs_hosts, gateways=["istio-ingress/ingress"])]
    )
    expected = [f"{host}:80 ['{host}']" for host in served] or ["blackhole:80 ['*']"]
    assert _routes(resources) == {"http.80": expected}


def test_two_virtual_services_for_one_host_on_one_gateway_are_refused() -> None:
    services = [
        _vs(SHOP, gateways=["istio-ingress/ingress"], name="one"),
        _vs(SHOP, gateways=["istio-ingress/ingress"], name="two"),
    ]
    assert _problems([_gateway(_http("*"))], services) == ["VirtualService default/two spec.hosts"]


@pytest.mark.parametrize(
    ("server", "field"),
    [
        (_https(SHOP, tls={"mode": "PASSTHROUGH"}), "spec.servers[0].tls.mode"),
        (_https(SHOP, tls={"mode": "MUTUAL", "credentialName": "c"}), "spec.servers[0].tls.mode"),
        (_https(SHOP, tls={"mode": "ISTIO_MUTUAL"}), "spec.servers[0].tls.mode"),
        (_https(SHOP, tls={"mode": "SIMPLE"}), "spec.servers[0].tls.credentialName"),
        (
            _https(SHOP, tls={"mode": "SIMPLE", "credentialName": "c", "caCertificates": "x"}),
            "spec.servers[0].tls.caCertificates",
        ),
        ({**_https(SHOP), "tls": None}, "spec.servers[0].tls"),
        (
            {"port": {"number": 80, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]},
            "spec.servers[0].port.protocol",
        ),
        (
            {"port": {"number": 443, "name": "tls", "protocol": "TLS"}, "hosts": ["*"]},
            "spec.servers[0].port.protocol",
        ),
        (_http("*", number=8080), "spec.servers[0].port.number"),
        ({**_http("*"), "bind": "10.0.0.1"}, "spec.servers[0].bind"),
        ({**_http("*"), "tls": {"httpsRedirect": True}}, "spec.servers[0].tls"),
    ],
)
def test_what_the_local_gateway_cannot_serve_is_refused_by_field(server: Json, field: str) -> None:
    problems = _problems([_gateway(server)], [])
    assert problems == [f"Gateway istio-ingress/ingress {field}"]


def test_a_gateway_for_another_gateway_workload_is_refused() -> None:
    found = _gateway(_http("*"))
    found["spec"]["selector"] = {"istio": "egressgateway"}
    assert _problems([found], []) == ["Gateway istio-ingress/ingress spec.selector"]


def test_sidecars_get_no_gateway_only_virtual_service() -> None:
    shop = _vs(SHOP, gateways=["istio-ingress/ingress"])
    resources = pilot.translate([shop], [RULE], demo_workloads("v1", "v2"))
    # The service keeps istiod's default route; the external host has no virtual host.
    assert resources.virtual_host("demo")["routes"][0]["name"] == "default"
    with pytest.raises(KeyError):
        resources.virtual_host(SHOP)
    both = _vs("demo", gateways=["mesh", "istio-ingress/ingress"])
    routed = pilot.translate([both], [RULE], demo_workloads("v1", "v2"))
    assert routed.virtual_host("demo")["routes"][0]["name"] == "primary"


def test_a_mesh_without_a_gateway_names_what_it_cannot_serve() -> None:
    assert gateway.unserved([_vs(SHOP, gateways=["mesh"])]) == []
    (problem,) = gateway.unserved([_vs(SHOP, gateways=["istio-ingress/ingress"])])
    assert problem.startswith("VirtualService default/shop spec.gateways: not supported")


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        ({"selector": LABELS, "servers": "x"}, ["spec.servers"]),
        (
            {"selector": LABELS, "servers": [{"port": {"number": "80"}, "hosts": "a"}]},
            [
                "spec.servers[0].port.number",
                "spec.servers[0].hosts",
                "spec.servers[0].port.protocol",
            ],
        ),
        ({"selector": LABELS, "servers": [None]}, ["spec.servers[0]"]),
        ({"selector": {"istio": 1}, "servers": []}, ["spec.selector", "spec.servers"]),
        (None, ["spec"]),
    ],
)
def test_a_malformed_gateway_is_one_problem_per_field_never_a_traceback(
    spec: Json | None, problems: list[str]
) -> None:
    found = _gateway()
    found["spec"] = spec
    assert _problems([found], []) == [f"Gateway istio-ingress/ingress {p}" for p in problems]
