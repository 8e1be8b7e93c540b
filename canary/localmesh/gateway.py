"""The local mesh's ingress gateway: one Envoy programmed from Gateway + VirtualService by files.

It stands where `istio-ingressgateway` stands in a cluster, between outside callers and the
sidecars: its listeners, routes and clusters all come from filesystem xDS (LDS, RDS, CDS files
in its own directory) written by `GatewayPublisher` from the translation in `pilot/gateway.py`,
so a Gateway or a weight changed in the store reaches it without a restart.

Ports: a Gateway server's port number is what a cluster's Service exposes (80, 443); the local
gateway Envoy listens for each on a free loopback port, as a Service's targetPort would be
(`GatewaySpec.http`, `.https` name the numbers; `LocalGateway.http_port`, `.https_port` where
they listen). Certificates: a server's `credentialName` names a Secret in a cluster; here it
names a certificate the mesh's CA issues on first use for that server's hosts
(`gateway-<credentialName>-cert-chain.pem` in the CA's directory), so a client that trusts
the CA root (`LocalGateway.ca_root`) checks the gateway's name as it would a real one.

"Applied" works as for the client-side Envoy (`pilot/pilot.py`): only changed files are
rewritten, clusters before routes before listeners, and version N counts as served once the
config dump shows every file that carried N at least that far.
"""

from __future__ import annotations

import collections
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.localmesh import envoy, procs
from canary.localmesh.certs import LocalCA
from canary.localmesh.pilot import bootstrap as pilot_bootstrap
from canary.localmesh.pilot import xds
from canary.localmesh.pilot.gateway import GatewayResources, Listen, translate_gateway
from canary.localmesh.pilot.model import Json, Workload
from canary.localmesh.pilot.pilot import config_dump

LDS_FILE = "lds.json"
_HISTORY = 1024
# The labels of istio-ingressgateway's pods, which the Bookinfo and tutorial Gateways select.
DEFAULT_LABELS = {"istio": "ingressgateway"}


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    """What the mesh's ingress gateway serves: its labels and the server port numbers."""

    labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    http: int = 80
    https: int = 443
    # The external host the mesh's users call through the gateway (none: through the client
    # side), and whether over HTTPS.
    load_host: str = ""
    load_tls: bool = False


class GatewayPublisher:
    """Translates the store's objects for the gateway Envoy and writes its xDS files.

    Envoy takes one resource per filesystem RDS file, so each route configuration has its own
    (`rds/<name>.json`); clusters and listeners have one file each. A file is known by a key:
    `cds`, `lds`, or `rds:<route configuration name>`.
    """

    def __init__(
        self,
        *,
        xds_dir: Path,
        spec: GatewaySpec,
        listen: Mapping[int, Listen],
        workloads: Sequence[Workload],
        ca: LocalCA,
        service_port: int = 80,
    ) -> None:
        self.xds_dir = xds_dir
        self.spec = spec
        self.listen = dict(listen)
        self.workloads = tuple(workloads)
        self.ca = ca
        self.service_port = service_port
        self.cds_path = xds_dir / xds.CDS_FILE
        self.lds_path = xds_dir / LDS_FILE
        self._texts: dict[str, str] = {}
        self._versions: dict[str, int] = {}
        self._version = -1
        self._issued: dict[tuple[str, tuple[str, ...]], tuple[Path, Path]] = {}
        self._lock = threading.Lock()
        # (version, the file versions Envoy must show to serve it)
        self._history: collections.deque[tuple[int, dict[str, int]]] = collections.deque(
            maxlen=_HISTORY
        )
        (xds_dir / "rds").mkdir(parents=True, exist_ok=True)
        # Until the first push: no Gateway, so no listener; Envoy starts with valid files.
        self.push([], [], [])

    def rds_path(self, route_name: str) -> Path:
        return self.xds_dir / "rds" / f"{route_name}.json"

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def translate(
        self,
        gateways: Sequence[Mapping[str, Any]],
        virtual_services: Sequence[Mapping[str, Any]],
        destination_rules: Sequence[Mapping[str, Any]],
    ) -> GatewayResources:
        """Raises TranslationError, writing nothing, when anything cannot be expressed."""
        return translate_gateway(
            gateways,
            virtual_services,
            destination_rules,
            self.workloads,
            labels=self.spec.labels,
            listen=self.listen,
            credentials=self._credential,
            service_port=self.service_port,
            rds_source=lambda name: pilot_bootstrap.file_source(self.rds_path(name)),
        )

    def push(
        self,
        gateways: Sequence[Mapping[str, Any]],
        virtual_services: Sequence[Mapping[str, Any]],
        destination_rules: Sequence[Mapping[str, Any]],
    ) -> int:
        return self.publish(self.translate(gateways, virtual_services, destination_rules))

    def publish(self, resources: GatewayResources) -> int:
        """Writes what changed (clusters, then routes, then listeners); returns the version."""
        # Ordered so that nothing names what Envoy has not got yet.
        files: dict[str, tuple[Path, list[Json]]] = {"cds": (self.cds_path, resources.clusters)}
        for configuration in resources.route_configurations:
            name = str(configuration["name"])
            files[f"rds:{name}"] = (self.rds_path(name), [configuration])
        files["lds"] = (self.lds_path, resources.listeners)
        with self._lock:
            texts = {key: xds.canonical(found) for key, (_, found) in files.items()}
            changed = [key for key in files if texts[key] != self._texts.get(key)]
            if not changed:
                return self._version
            version = self._version + 1
            for key in changed:
                path, found = files[key]
                xds.write(path, found, version=version)
                self._texts[key], self._versions[key] = texts[key], version
            self._version = version
            # An empty file needs nothing from Envoy: with no listener, no route is asked for.
            needed = {key: self._versions[key] for key, (_, found) in files.items() if found}
            self._history.append((version, needed))
            return version

    def applied_version(self, admin_url: str) -> int | None:
        """The newest version the gateway Envoy serves; None before any, or when unreachable."""
        dump = config_dump(admin_url)
        if dump is None:
            return None
        seen = _accepted(dump)
        with self._lock:
            carried = [
                version
                for version, files in self._history
                if all(at <= seen.get(key, -1) for key, at in files.items())
            ]
        return max(carried, default=None)

    def _credential(self, name: str, hosts: tuple[str, ...]) -> tuple[Path, Path]:
        # A certificate cannot name `*`; a server for any host gets one for localhost.
        names = tuple(sorted({host for host in hosts if host != "*"})) or ("localhost",)
        key = (name, names)
        if key not in self._issued:
            issued = self.ca.issue(f"gateway-{name}", dns_names=names)
            self._issued[key] = (issued.cert_chain, issued.private_key)
        return self._issued[key]


def _accepted(dump: Mapping[str, Any]) -> dict[str, int]:
    """The version of each file as Envoy shows it, by the publisher's keys."""
    seen: dict[str, int] = {}
    for config in dump.get("configs") or []:
        kind = str(config.get("@type", ""))
        if kind.endswith(".ClustersConfigDump"):
            seen["cds"] = _int(config.get("version_info"))
        elif kind.endswith(".RoutesConfigDump"):
            for entry in config.get("dynamic_route_configs") or []:
                name = (entry.get("route_config") or {}).get("name")
                seen[f"rds:{name}"] = _int(entry.get("version_info"))
        elif kind.endswith(".ListenersConfigDump"):
            # A listener still warming (waiting for its routes) serves nothing yet.
            warming = any(
                "active_state" not in entry for entry in config.get("dynamic_listeners") or []
            )
            seen["lds"] = -1 if warming else _int(config.get("version_info"))
    return seen


def _int(text: Any) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return -1


@dataclass(frozen=True, slots=True)
class LocalGateway:
    """The running gateway Envoy and where it listens."""

    handle: envoy.EnvoyHandle
    publisher: GatewayPublisher
    http_port: int
    https_port: int
    ca_root: Path

    @property
    def admin_url(self) -> str:
        return self.handle.admin_url

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/"

    def applied_version(self) -> int | None:
        return self.publisher.applied_version(self.admin_url)

    def entry(self) -> tuple[str, str, ssl.SSLContext | None]:
        """How users call through the gateway: its URL, the external host, and over HTTPS the
        TLS context that trusts the mesh's CA."""
        spec = self.publisher.spec
        if not spec.load_tls:
            return self.http_url, spec.load_host, None
        return self.https_url, spec.load_host, ssl.create_default_context(cafile=str(self.ca_root))


def start_gateway(
    supervisor: procs.Supervisor,
    *,
    spec: GatewaySpec,
    workdir: Path,
    workloads: Sequence[Workload],
    ca: LocalCA,
    admin_port: int,
    http_port: int,
    https_port: int,
    service_port: int = 80,
) -> LocalGateway:
    publisher = GatewayPublisher(
        xds_dir=workdir,
        spec=spec,
        listen={
            spec.http: Listen(http_port, https=False),
            spec.https: Listen(https_port, https=True),
        },
        workloads=workloads,
        ca=ca,
        service_port=service_port,
    )
    handle = envoy.start_envoy(
        supervisor,
        bootstrap(admin_port=admin_port, publisher=publisher),
        name="ingress-gateway",
        admin_port=admin_port,
        workdir=workdir,
    )
    return LocalGateway(handle, publisher, http_port, https_port, ca.root)


def bootstrap(*, admin_port: int, publisher: GatewayPublisher) -> dict[str, Any]:
    return {
        # istiod's node id for a gateway is router~...; the stats and dumps read alike.
        "node": {"id": "router~127.0.0.1~ingress-gateway~local", "cluster": "ingress-gateway"},
        "admin": envoy.admin(admin_port),
        "overload_manager": envoy.connection_limit(),
        "stats_config": envoy.stats_config(),
        "dynamic_resources": {
            "lds_config": pilot_bootstrap.file_source(publisher.lds_path),
            "cds_config": pilot_bootstrap.file_source(publisher.cds_path),
        },
    }
