"""The ingress scenario: the demo service rolled out at the edge, through an ingress gateway.

Users outside the mesh call `https://shop.example.test/`; the mesh's ingress gateway Envoy
terminates TLS with a certificate the local CA issued for that name and routes by a
VirtualService bound to the Gateway `istio-ingress/ingress`, whose one http route the Canary
manages. No sidecar gets that VirtualService (it names a gateway and not `mesh`), so every
request of the rollout goes through the gateway, and the gateway's own counters (requests per
status class on its HTTPS listener, TLS handshakes) are printed with the rollout to show it.

The VirtualService lives beside its Gateway in `istio-ingress`, as people keep an edge route,
and the Canary in the service's namespace names it there (`spec.service.virtualServiceNamespace`);
its destinations name the service in full, since a short name would resolve in `istio-ingress`.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from typing import Any

from canary.demo import scenario
from canary.localmesh.gateway import GatewaySpec, LocalGateway

HOST = "shop.example.test"
GATEWAY_NAMESPACE = "istio-ingress"
GATEWAY = "ingress"
CREDENTIAL = "shop-example-test"
_TIMEOUT = 2.0


def gateway_spec(bodies: list[dict[str, Any]] | None = None) -> GatewaySpec:
    """The mesh's gateway for the objects' Gateways (the scenario's by default): it listens on
    their first HTTP and HTTPS server ports, and the users call the first external host a
    VirtualService bound to a gateway names (a wildcard as a name it covers), over HTTPS when
    a server offers it."""
    bodies = objects() if bodies is None else bodies
    servers = [
        server
        for body in bodies
        if body.get("kind") == "Gateway"
        for server in _list((body.get("spec") or {}).get("servers"))
        if isinstance(server, dict) and isinstance(server.get("port"), dict)
    ]
    numbers = {"HTTP": 80, "HTTPS": 443}
    for server in reversed(servers):
        protocol = str(server["port"].get("protocol", "")).upper()
        if protocol in numbers and isinstance(server["port"].get("number"), int):
            numbers[protocol] = server["port"]["number"]
    hosts = [
        host
        for body in bodies
        if body.get("kind") == "VirtualService"
        and [g for g in _list((body.get("spec") or {}).get("gateways")) if g != "mesh"]
        for host in _list((body.get("spec") or {}).get("hosts"))
        if isinstance(host, str)
    ]
    # A wildcard is called by a name it covers: `*.example.com` as www.example.com.
    hosts = sorted(hosts, key=lambda host: "*" in host)
    load_host = hosts[0].replace("*.", "www.").replace("*", "localhost") if hosts else ""
    https = any(str(s["port"].get("protocol", "")).upper() == "HTTPS" for s in servers)
    return GatewaySpec(
        http=numbers["HTTP"],
        https=numbers["HTTPS"],
        load_host=load_host,
        load_tls=https,
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def gateway() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY, "namespace": GATEWAY_NAMESPACE},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [HOST]},
                {
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": [HOST],
                    "tls": {"mode": "SIMPLE", "credentialName": CREDENTIAL},
                },
            ],
        },
    }


def virtual_service() -> dict[str, Any]:
    """The demo's route, for the external host on the gateway instead of the service name."""
    found = scenario.virtual_service()
    found["metadata"] = {"name": "shop", "namespace": GATEWAY_NAMESPACE}
    found["spec"]["hosts"] = [HOST]
    found["spec"]["gateways"] = [GATEWAY]
    service = f"{scenario.SERVICE}.{scenario.NAMESPACE}.svc.cluster.local"
    for route in found["spec"]["http"]:
        for entry in route["route"]:
            entry["destination"]["host"] = service
    return found


def objects() -> list[dict[str, Any]]:
    canary = scenario.canary()
    canary["spec"]["service"]["virtualService"] = "shop"
    canary["spec"]["service"]["virtualServiceNamespace"] = GATEWAY_NAMESPACE
    return [gateway(), virtual_service(), scenario.destination_rule(), canary]


def uses_gateway(bodies: list[dict[str, Any]]) -> bool:
    """Whether the objects hold a Gateway (the mesh must run its ingress gateway)."""
    return any(body.get("kind") == "Gateway" for body in bodies)


def url(gateway: LocalGateway) -> str:
    """What the users call: the external host, over HTTPS when the gateway's load uses it."""
    spec = gateway.publisher.spec
    return f"{'https' if spec.load_tls else 'http'}://{spec.load_host}/"


def stats(gateway: LocalGateway) -> dict[str, int]:
    """The gateway's counters for the listener the users call, named as a user reads them;
    {} if its admin does not answer (the view shows nothing rather than a guess)."""
    tls = gateway.publisher.spec.load_tls
    port = gateway.https_port if tls else gateway.http_port
    manager = f"http.outbound_0.0.0.0_{port}"
    wanted = {
        f"{'https' if tls else 'http'} requests": f"{manager}.downstream_rq_total",
        "2xx": f"{manager}.downstream_rq_2xx",
        "5xx": f"{manager}.downstream_rq_5xx",
    }
    if tls:
        wanted["TLS handshakes"] = f"listener.127.0.0.1_{port}.ssl.handshake"
    pattern = "|".join(f"^{re.escape(name)}$" for name in wanted.values())
    query = urllib.parse.urlencode({"format": "json", "filter": pattern})
    try:
        with urllib.request.urlopen(f"{gateway.admin_url}/stats?{query}", timeout=_TIMEOUT) as r:
            found = {entry["name"]: entry.get("value") for entry in json.load(r).get("stats") or []}
    except (OSError, ValueError):
        return {}
    return {
        label: value for label, name in wanted.items() if isinstance(value := found.get(name), int)
    }


def lines(final: dict[str, int], gateway_line: str) -> list[str]:
    """The report's closing lines about the gateway."""
    if not final:
        return [f"ingress gateway {gateway_line}: its counters could not be read"]
    counts = ", ".join(f"{name} {value}" for name, value in final.items())
    return [f"ingress gateway {gateway_line}: {counts}"]
