"""The mtls-strict scenario: a rollout in a STRICT namespace, and a caller outside the mesh.

The good scenario's objects, with a namespace-wide PeerAuthentication that says STRICT and the
DestinationRule's `tls.mode: ISTIO_MUTUAL`: the client-side Envoy (the callers' sidecar) speaks
mTLS with its workload certificate, every inbound Envoy (a pod's sidecar) takes mTLS only, and
the rollout goes on as in the good scenario. Meanwhile a plaintext caller, standing for a pod
without a sidecar (flagger#239's load tester), calls a canary pod's inbound Envoy straight on
every second and is refused each time. The closing lines are Envoy's own counters of both:
the handshakes each listener and each client cluster made, and the plaintext connections no
filter chain took.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from canary.localmesh.mesh import LocalMesh

_PERIOD = 1.0
_TIMEOUT = 2.0


def peer_authentication(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {"mtls": {"mode": "STRICT"}},
    }


def strict(objects: Sequence[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The objects with ISTIO_MUTUAL in every DestinationRule and a STRICT namespace."""
    found = [dict(body) for body in objects]
    for body in found:
        if body.get("kind") == "DestinationRule":
            spec = body["spec"] = dict(body["spec"])
            spec["trafficPolicy"] = {
                **spec.get("trafficPolicy", {}),
                "tls": {"mode": "ISTIO_MUTUAL"},
            }
    return [*found, peer_authentication(namespace)]


def mesh_options(objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """LocalMesh's mTLS arguments: on when any object asks for mTLS, with the policies."""
    policies = [body for body in objects if body.get("kind") == "PeerAuthentication"]
    asks = any(
        body.get("kind") == "DestinationRule" and "ISTIO_MUTUAL" in json.dumps(body.get("spec"))
        for body in objects
    )
    if not (policies or asks):
        return {}
    return {"mtls": True, "peer_authentications": policies}


@dataclass
class PlaintextCaller:
    """Calls one inbound Envoy in plaintext every second, counting what came back."""

    port: int
    answered: int = 0
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PlaintextCaller:
        self._thread = threading.Thread(target=self._run, name="plaintext-caller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_PERIOD + _TIMEOUT + 1)

    def _run(self) -> None:
        while not self._stop.wait(_PERIOD):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=_TIMEOUT)
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
                self.answered += 1
            except (OSError, http.client.HTTPException):
                self.refused += 1
            finally:
                connection.close()


def caller_for(mesh: LocalMesh, version: str) -> PlaintextCaller | None:
    """A plaintext caller at the first instance of `version`, when that instance is STRICT."""
    for instance in mesh.instances:
        if instance.version == version and mesh.inbound_modes.get(instance.name) == "STRICT":
            return PlaintextCaller(instance.listen_port)
    return None


def stats_lines(mesh: LocalMesh, caller: PlaintextCaller | None) -> list[str]:
    """What Envoy counted: each inbound listener's handshakes, TLS errors and refused plaintext
    connections, and each client-side cluster's handshakes. Read before the mesh stops."""
    lines: list[str] = []
    if caller is not None:
        lines.append(
            f"plaintext caller at :{caller.port} (no sidecar): {caller.refused} refused, "
            f"{caller.answered} answered"
        )
    for instance in mesh.instances:
        prefix = f"listener.127.0.0.1_{instance.listen_port}."
        stats = _stats(instance.inbound.admin_url)
        picked = {
            name: stats.get(prefix + name, 0)
            for name in ("ssl.handshake", "ssl.connection_error", "no_filter_chain_match")
        }
        picked["downstream_cx_total"] = stats.get(prefix + "downstream_cx_total", 0)
        mode = mesh.inbound_modes.get(instance.name, "off")
        lines.append(
            f"{instance.name} inbound ({mode}): "
            + ", ".join(f"{prefix}{name} {value}" for name, value in picked.items())
        )
    if mesh.client is not None:
        client = _stats(mesh.client.admin_url)
        for name, value in sorted(client.items()):
            if name.startswith("cluster.outbound|") and name.endswith(".ssl.handshake"):
                lines.append(f"client-side {name} {value}")
    return lines


def _stats(admin_url: str) -> dict[str, int]:
    try:
        with urllib.request.urlopen(f"{admin_url}/stats?format=json", timeout=_TIMEOUT) as answer:
            body = json.loads(answer.read())
    except (OSError, ValueError):
        return {}
    return {
        str(s["name"]): int(s["value"])
        for s in body.get("stats", [])
        if isinstance(s, dict) and isinstance(s.get("value"), int) and "name" in s
    }
