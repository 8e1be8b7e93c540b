"""One config version for the mesh's two programmed Envoys: the client side and the gateway.

The client-side Pilot and the gateway publisher each count their own versions. A push is
translated for both before either writes (so a refusal by one leaves both as they were), and
gets one mesh version when either changed; that version is applied once each Envoy serves its
part of it. Without a gateway, a VirtualService bound to gateways only or a Gateway is refused:
nothing here would serve it, and a weight written there would be "applied" without moving any
traffic.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

from canary.localmesh import pilot
from canary.localmesh.gateway import LocalGateway
from canary.localmesh.pilot.gateway import unserved

_HISTORY = 1024


class Publishing:
    def __init__(self, client: pilot.Pilot, *, client_admin: str, gateway: LocalGateway | None):
        self.client = client
        self.client_admin = client_admin
        self.gateway = gateway
        # (mesh version, client-side version, gateway version) of each push that changed any.
        self._pushed: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=_HISTORY)

    def push(
        self,
        virtual_services: Sequence[Mapping[str, Any]],
        destination_rules: Sequence[Mapping[str, Any]],
        gateways: Sequence[Mapping[str, Any]],
        peer_authentications: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Raises TranslationError, having written nothing, if either side refuses.
        PeerAuthentications, when given, are what the client side's auto mTLS reads."""
        if self.gateway is None:
            problems = unserved(virtual_services) + [_no_gateway(body) for body in gateways]
            if problems:
                raise pilot.TranslationError(tuple(problems))
            at_gateway = 0
            at_client = self.client.push(virtual_services, destination_rules, peer_authentications)
        else:
            publisher = self.gateway.publisher
            resources = publisher.translate(gateways, virtual_services, destination_rules)
            at_client = self.client.push(virtual_services, destination_rules, peer_authentications)
            at_gateway = publisher.publish(resources)
        last = self._pushed[-1] if self._pushed else (0, -1, -1)
        if (at_client, at_gateway) != last[1:]:
            self._pushed.append((last[0] + 1, at_client, at_gateway))
        return self._pushed[-1][0]

    def applied_version(self) -> int | None:
        """The newest mesh version both Envoys serve, None before any."""
        at_client = self.client.applied_version(self.client_admin)
        at_gateway = 0 if self.gateway is None else self.gateway.applied_version()
        if at_client is None or at_gateway is None:
            return None
        served = [
            version
            for version, client, gateway in self._pushed
            if client <= at_client and gateway <= at_gateway
        ]
        return max(served, default=None)


def _no_gateway(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return (
        f"Gateway {meta.get('namespace')}/{meta.get('name')}: not supported by the local mesh "
        "(it runs no ingress gateway; start it with one)"
    )
