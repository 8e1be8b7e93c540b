"""The ingress scenario: the demo service rolled out at the edge, through an ingress gateway.

Users outside the mesh call `https://shop.example.test/`; the mesh's ingress gateway Envoy
terminates TLS with a certificate the local CA issued for that name and routes by a
VirtualService bound to the Gateway `istio-ingress/ingress`, whose one http route the Canary
manages. No sidecar gets that VirtualService (it names a gateway and not `mesh`), so every
request of the rollout goes through the gateway, and the gateway's own counters (requests per
status class on its HTTPS listener, TLS handshakes) are printed with the rollout to show it.

The VirtualService lives in the Canary's namespace and names the Gateway as `istio-ingress/
ingress`: a Canary naming a VirtualService in another namespace
(`spec.service.virtualServiceNamespace`) needs the controller's support for it.
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
_ADMIN_TIMEOUT = 2.0


def gateway_spec() -> GatewaySpec:
    """The mesh's gateway, with the users calling it over HTTPS by the external name."""
    return GatewaySpec(load_host=HOST, load_tls=True)


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
    found["metadata"]["name"] = "shop"
    found["spec"]["hosts"] = [HOST]
    found["spec"]["gateways"] = [f"{GATEWAY_NAMESPACE}/{GATEWAY}"]
    return found


def objects() -> list[dict[str, Any]]:
    canary = scenario.canary()
    canary["spec"]["service"]["virtualService"] = "shop"
    return [gateway(), virtual_service(), scenario.destination_rule(), canary]


def uses_gateway(bodies: list[dict[str, Any]]) -> bool:
    """Whether the objects hold a Gateway (the mesh must run its ingress gateway)."""
    return any(body.get("kind") == "Gateway" for body in bodies)


def stats(gateway: LocalGateway) -> dict[str, int]:
    """The gateway's counters for its HTTPS listener, named as a user reads them; {} if its
    admin does not answer (the view shows nothing rather than a guess)."""
    listener = f"127.0.0.1_{gateway.https_port}"
    manager = f"http.outbound_0.0.0.0_{gateway.https_port}"
    wanted = {
        "https requests": f"{manager}.downstream_rq_total",
        "2xx": f"{manager}.downstream_rq_2xx",
        "5xx": f"{manager}.downstream_rq_5xx",
        "TLS handshakes": f"listener.{listener}.ssl.handshake",
    }
    pattern = "|".join(f"^{re.escape(name)}$" for name in wanted.values())
    query = urllib.parse.urlencode({"format": "json", "filter": pattern})
    url = f"{gateway.admin_url}/stats?{query}"
    try:
        with urllib.request.urlopen(url, timeout=_ADMIN_TIMEOUT) as response:
            found = {
                entry["name"]: entry.get("value")
                for entry in json.load(response).get("stats") or []
            }
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
