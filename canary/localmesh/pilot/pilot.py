"""The Pilot: translate, publish through filesystem xDS, and tell which version Envoy accepted.

Versions are one counter for the pair of files: every push that changes anything gets the next
integer, and only the files whose content changed are rewritten (CDS before RDS, so that a route
never names a cluster Envoy has not got yet). A translation that fails writes nothing, so Envoy
keeps serving the last good config and no half-applied change exists.

"Applied" has to be read back from Envoy, which reports a version per resource type, and only
moves it when the content changes: a file rewritten with the same resources and a new
`version_info` leaves the RDS and the CDS version in the config dump where they were (Envoy 1.40
skips an update whose hash it already has). So the Pilot writes only the files that changed and
remembers, for each version it published, which RDS and CDS versions carry it; version N is
applied once Envoy's config dump shows both at least that far. A restarted Pilot on the same
directory goes on counting from the versions in the files, so the numbers never go back.

Like istiod, the Pilot names each route's span with a decorator (`demo.default.svc.cluster.local:
80/*`), which Envoy sends on in `x-envoy-decorator-operation`, and the server-side Envoy names
its own span with it: in Istio both spans of a call carry the route's name. The local mesh names
its server spans by the app's operations instead (`POST /checkout`), so a Pilot made with
`propagate_operations=False` keeps its decorators to its own spans.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from canary.localmesh.pilot import bootstrap as bootstrap_config
from canary.localmesh.pilot import xds
from canary.localmesh.pilot.model import EnvoyResources, Workload
from canary.localmesh.pilot.mtls import MeshTls
from canary.localmesh.pilot.tracing import Tracing
from canary.localmesh.pilot.translate import translate

# Enough to answer for any version a caller still waits on; older ones count as applied or not.
_HISTORY = 1024
_ADMIN_TIMEOUT = 2.0


class Pilot:
    def __init__(
        self,
        *,
        xds_dir: Path,
        listener_port: int,
        workloads: Sequence[Workload],
        namespace: str = "default",
        service_port: int = 80,
        propagate_operations: bool = True,
        mesh_tls: MeshTls | None = None,
    ) -> None:
        self.xds_dir = xds_dir
        self.propagate_operations = propagate_operations
        self.listener_port = listener_port
        self.workloads = tuple(workloads)
        self.namespace = namespace
        self.service_port = service_port
        self.mesh_tls = mesh_tls
        self.cds_path = xds_dir / xds.CDS_FILE
        self.rds_path = xds_dir / xds.RDS_FILE
        self._lock = threading.Lock()
        xds_dir.mkdir(parents=True, exist_ok=True)
        cds, rds = xds.read(self.cds_path), xds.read(self.rds_path)
        self._cds_version, self._cds_text = (cds[0], xds.canonical(cds[1])) if cds else (-1, "")
        self._rds_version, self._rds_text = (rds[0], xds.canonical(rds[1])) if rds else (-1, "")
        self._version = max(self._cds_version, self._rds_version)
        # (published version, the RDS version and the CDS version that carry it)
        self._history: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=_HISTORY)
        self._history.append((self._version, self._rds_version, self._cds_version))
        # The files always hold a valid pair: until the first push, every service's default route.
        self._publish(self._translate([], []))

    @property
    def route_name(self) -> str:
        return str(self.service_port)

    @property
    def version(self) -> int:
        """The version last written."""
        with self._lock:
            return self._version

    def bootstrap(
        self,
        *,
        admin_port: int,
        node_id: str = "client-side",
        access_log: Path | None = None,
        tracing: Tracing | None = None,
    ) -> dict[str, Any]:
        """The client-side Envoy's bootstrap, reading this Pilot's files; with `tracing`, its
        requests are traced."""
        return bootstrap_config.bootstrap(
            node_id=node_id,
            admin_port=admin_port,
            listener_port=self.listener_port,
            service_port=self.service_port,
            route_name=self.route_name,
            cds_path=self.cds_path,
            rds_path=self.rds_path,
            access_log=access_log,
            tracing=tracing,
        )

    def push(
        self,
        virtual_services: Sequence[Mapping[str, Any]],
        destination_rules: Sequence[Mapping[str, Any]],
        peer_authentications: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Publishes the objects; returns the version now written (unchanged if nothing changed).
        PeerAuthentications, when given, replace those auto mTLS reads.

        Raises TranslationError, having written nothing, when anything cannot be expressed.
        """
        if peer_authentications is not None and self.mesh_tls is not None:
            self.mesh_tls = dataclasses.replace(
                self.mesh_tls, peer_authentications=tuple(peer_authentications)
            )
        return self._publish(self._translate(virtual_services, destination_rules))

    def applied_version(self, admin_url: str) -> int | None:
        """The newest version Envoy has accepted, read from its admin config dump.

        None when Envoy has accepted none of ours yet or cannot be asked (not up, not answering
        within a couple of seconds): to a caller waiting for a change, both mean "not yet".
        """
        dump = config_dump(admin_url)
        if dump is None:
            return None
        rds, cds = _accepted_versions(dump, self.route_name)
        if rds is None or cds is None:
            return None
        with self._lock:
            carried = [v for v, at_rds, at_cds in self._history if at_rds <= rds and at_cds <= cds]
        return max(carried, default=None)

    def _translate(
        self,
        virtual_services: Sequence[Mapping[str, Any]],
        destination_rules: Sequence[Mapping[str, Any]],
    ) -> EnvoyResources:
        resources = translate(
            virtual_services,
            destination_rules,
            self.workloads,
            namespace=self.namespace,
            port=self.service_port,
            mesh_tls=self.mesh_tls,
        )
        if not self.propagate_operations:
            _keep_operations(resources.route_configuration)
        return resources

    def _publish(self, resources: EnvoyResources) -> int:
        clusters, route = resources.clusters, [resources.route_configuration]
        cds_text, rds_text = xds.canonical(clusters), xds.canonical(route)
        with self._lock:
            if cds_text == self._cds_text and rds_text == self._rds_text:
                return self._version
            version = self._version + 1
            if cds_text != self._cds_text:
                xds.write(self.cds_path, clusters, version=version)
                self._cds_version, self._cds_text = version, cds_text
            if rds_text != self._rds_text:
                xds.write(self.rds_path, route, version=version)
                self._rds_version, self._rds_text = version, rds_text
            self._version = version
            self._history.append((version, self._rds_version, self._cds_version))
            return version


def _keep_operations(route_configuration: dict[str, Any]) -> None:
    for host in route_configuration.get("virtual_hosts") or []:
        for route in host.get("routes") or []:
            if "decorator" in route:
                route["decorator"]["propagate"] = False


def config_dump(admin_url: str) -> dict[str, Any] | None:
    url = f"{admin_url.rstrip('/')}/config_dump"
    try:
        with urllib.request.urlopen(url, timeout=_ADMIN_TIMEOUT) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        # URLError, refused connections and timeouts are OSErrors; a bad body is a ValueError.
        return None
    return body if isinstance(body, dict) else None


def _accepted_versions(dump: Mapping[str, Any], route_name: str) -> tuple[int | None, int | None]:
    """The version of our route configuration and of the last CDS update Envoy accepted."""
    rds: int | None = None
    cds: int | None = None
    for config in dump.get("configs") or []:
        kind = str(config.get("@type", ""))
        if kind.endswith(".RoutesConfigDump"):
            for entry in config.get("dynamic_route_configs") or []:
                if (entry.get("route_config") or {}).get("name") == route_name:
                    rds = _version(entry.get("version_info"))
        elif kind.endswith(".ClustersConfigDump"):
            cds = _version(config.get("version_info"))
    return rds, cds


def _version(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
