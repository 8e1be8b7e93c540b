"""What each inbound Envoy of the local mesh accepts (mTLS mode), kept in step with the policies.

An inbound Envoy stands for one instance's sidecar. With mTLS on, its listener is a file (LDS), so
when a push brings PeerAuthentications that change what an instance accepts, only that
instance's listener file is rewritten, with a new version, and Envoy takes it without a restart
(`envoy.set_inbound_mode`). The modes are remembered per instance, so the demo can name the
instances that refuse plaintext.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from canary.localmesh import envoy, identity
from canary.localmesh.versions import Instance


class InboundTls:
    def __init__(
        self,
        identities: identity.Identities,
        *,
        namespace: str,
        service: str,
        port: int,
        peer_authentications: Sequence[dict[str, Any]],
    ) -> None:
        self.identities = identities
        self.namespace = namespace
        self.service = service
        self.port = port
        self.peer_authentications = list(peer_authentications)
        self.modes: dict[str, str] = {}
        self._listener_versions: dict[str, int] = {}

    def for_new_instance(self, name: str, version: str) -> dict[str, Any]:
        """The mode and certificate an instance's inbound Envoy starts with."""
        mode = self._accepts(version)
        self.modes[name] = mode
        return {"mtls_mode": mode, "identity": self.identities.instances[name]}

    def update(
        self, instances: Iterable[Instance], peer_authentications: Sequence[dict[str, Any]]
    ) -> None:
        """Rewrites the listener of each instance whose mode the new policies change."""
        self.peer_authentications = list(peer_authentications)
        for instance in instances:
            mode = self._accepts(instance.version)
            if mode == self.modes.get(instance.name):
                continue
            version = self._listener_versions.get(instance.name, 1) + 1
            self._listener_versions[instance.name] = version
            envoy.set_inbound_mode(
                instance.inbound.workdir,
                mode,
                self.identities.instances[instance.name],
                version=version,
            )
            self.modes[instance.name] = mode

    def _accepts(self, version: str) -> str:
        labels: Mapping[str, str] = {"app": self.service, "version": version}
        return identity.accepts(self.namespace, labels, self.peer_authentications, port=self.port)
