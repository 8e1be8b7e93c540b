"""The whole local data plane, started and stopped as one: what `canary demo` runs on.

For each version of the demo service there are two app instances (so outlier detection has
a host to eject and one left to serve), each behind its own inbound Envoy, as a sidecar
would be. One client-side Envoy, fed by our Pilot, routes the service's traffic across the
versions by the VirtualService weights. Prometheus scrapes every Envoy's admin port each
second, and a load generator plays the users, calling the service through the client side.

Every port is a free loopback port picked at start. Every process belongs to one Supervisor,
so a failure half-way through start-up stops what had already started, and leaving the
`with` block (or `stop()`) stops all of it. Prometheus starts first because it waits up to
5 s before its first scrape; the rest starts meanwhile.

With `traces=True` a local Jaeger starts before Prometheus (which scrapes its span metrics) and
every Envoy traces every request to it over OTLP: the inbound Envoys as the service itself
(`demo`), their spans tagged with their version's `subset` and `version`, one span per
operation (`GET /browse`, `POST /checkout`); the client-side Envoy as the caller, `loadgen`.
`otlp_collector` sends the spans to another OTLP/gRPC receiver instead.

With `mtls=True` every Envoy gets a workload certificate from a fresh local CA (`identity.py`);
each inbound Envoy accepts what the PeerAuthentications say for its instance's labels (those
given at start, then those each push brings), and the client side sends what the
DestinationRules and auto mTLS say.

With `gateway=GatewaySpec(...)` an ingress gateway Envoy (`gateway.py`) runs too, programmed
from the Gateways and VirtualServices pushed with the rest, scraped by Prometheus as `role:
gateway`; with the spec's `load_host`, the users call through it (`Host: <load_host>`, over
TLS trusting the mesh's CA with `load_tls`) instead of through the client side. A push is
translated for both Envoys before either is written, and a version counts as applied once both
serve it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from canary.localmesh import envoy, identity, jaeger, loadgen, pilot, procs, prometheus
from canary.localmesh import gateway as ingress
from canary.localmesh.certs import LocalCA
from canary.localmesh.inbound_tls import InboundTls
from canary.localmesh.publishing import Publishing
from canary.localmesh.router import TranslationRefused
from canary.localmesh.versions import Instance, VersionSpec

# Instance and VersionSpec live in versions.py; callers know them as mesh.Instance and
# mesh.VersionSpec.
__all__ = ["CLIENT_SERVICE", "SPAN_METRIC_DIMENSIONS", "Instance", "LocalMesh", "VersionSpec"]

T = TypeVar("T")

# The package root, so the app's `python -m canary.localmesh.app` works uninstalled too.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
# The service name of the client-side Envoy's spans: it stands for the callers' sidecar.
CLIENT_SERVICE = "loadgen"
# Span attributes that become labels of Jaeger's span metrics, to tell the versions apart there.
SPAN_METRIC_DIMENSIONS = ("subset", "version")


class LocalMesh:
    def __init__(
        self,
        *,
        service: str,
        versions: Sequence[VersionSpec],
        namespace: str = "default",
        workdir: Path | None = None,
        rate: float = 20.0,
        duration: float = 600.0,
        instances_per_version: int = 2,
        service_port: int = 80,
        mix: Sequence[tuple[loadgen.Request, int]] = (),
        traces: bool = False,
        otlp_collector: str | None = None,
        mtls: bool = False,
        peer_authentications: Sequence[dict[str, Any]] = (),
        gateway: ingress.GatewaySpec | None = None,
    ) -> None:
        if not versions:
            raise ValueError("the mesh needs at least one version")
        self.service = service
        self.namespace = namespace
        self.versions = list(versions)
        self.rate = rate
        self.duration = duration
        self.instances_per_version = instances_per_version
        self.service_port = service_port
        self.mix = tuple(mix)
        self.traces = traces
        self.otlp_collector = otlp_collector
        self.mtls = mtls
        self.peer_authentications = list(peer_authentications)
        # What each instance's inbound Envoy accepts (STRICT, PERMISSIVE, DISABLE), with mTLS.
        self.identities: identity.Identities | None = None
        self._local_ca: LocalCA | None = None
        self.inbound_tls: InboundTls | None = None
        self.host = f"{service}.{namespace}.svc.cluster.local"
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="canary-mesh-"))
        self.supervisor = procs.Supervisor(self.workdir / "logs")
        self.instances: list[Instance] = []
        self.client: envoy.EnvoyHandle | None = None
        self.client_port = 0
        self.prometheus: prometheus.PrometheusHandle | None = None
        self.load: loadgen.LoadGenerator | None = None
        self.jaeger: jaeger.JaegerHandle | None = None
        self._pilot: pilot.Pilot | None = None
        self.gateway_spec = gateway
        self.gateway: ingress.LocalGateway | None = None
        self._publishing: Publishing | None = None
        # What each inbound Envoy's route file holds: its fault (None: none) and file version.
        self._faults: dict[str, dict[str, Any] | None] = {}
        self._fault_versions: dict[str, int] = {}

    # --- what the demo and the router use

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}/"

    @property
    def admin_url(self) -> str:
        return self._started(self.client).admin_url

    @property
    def prometheus_url(self) -> str:
        return self._started(self.prometheus).url

    @property
    def jaeger_url(self) -> str:
        """Jaeger's query API (`/api/traces`), when the mesh started one."""
        return self._started(self.jaeger).query_url

    @property
    def tracing(self) -> pilot.Tracing | None:
        """Where the Envoys' spans go, without a service name of its own; None: untraced."""
        collector = self.jaeger.otlp_grpc if self.jaeger is not None else self.otlp_collector
        return None if collector is None else pilot.Tracing(collector, self.service)

    def push(
        self,
        virtual_services: Sequence[dict[str, Any]],
        destination_rules: Sequence[dict[str, Any]],
        gateways: Sequence[dict[str, Any]] = (),
        peer_authentications: Sequence[dict[str, Any]] | None = None,
    ) -> int:
        """Publishes the objects to the client-side Envoy and the gateway; returns the config
        version. PeerAuthentications, when given, are what auto mTLS reads from now on, and each
        inbound Envoy whose mode they change is given its new mode. Raises TranslationRefused,
        having written nothing, if either Envoy's translation refuses them."""
        if peer_authentications is not None and self.inbound_tls is not None:
            self.peer_authentications = list(peer_authentications)
            self.inbound_tls.update(self.instances, self.peer_authentications)
        try:
            return self._started(self._publishing).push(
                virtual_services, destination_rules, gateways, peer_authentications
            )
        except pilot.TranslationError as exc:
            raise TranslationRefused(str(exc)) from exc

    def applied_version(self) -> int | None:
        """The newest config version both Envoys (client side, gateway) serve, None before any."""
        return self._started(self._publishing).applied_version()

    def set_faults(
        self, planned: Sequence[tuple[str, Mapping[str, str], dict[str, Any], int | None]]
    ) -> None:
        """Each instance's inbound Envoy serves the planned fault whose host is this service and
        whose labels it has (the first `pods` such instances by name, or all), or none; only
        changed route files are written."""
        wanted: dict[str, dict[str, Any] | None] = dict.fromkeys(
            (instance.name for instance in self.instances), None
        )
        for host, selector, config, pods in planned:
            if host.split(".")[0] != self.service:
                continue
            chosen = sorted(
                instance.name
                for instance in self.instances
                if wanted[instance.name] is None
                and all(
                    {"app": self.service, "version": instance.version}.get(key) == value
                    for key, value in selector.items()
                )
            )
            for name in chosen[:pods] if pods is not None else chosen:
                wanted[name] = config
        for instance in self.instances:
            served = wanted[instance.name]
            if self._faults.get(instance.name) == served:
                continue
            self._fault_versions[instance.name] = self._fault_versions.get(instance.name, 1) + 1
            envoy.write_xds(
                instance.route_file,
                [envoy.inbound_route_config(app_cluster=f"app_{instance.name}", fault=served)],
                version=self._fault_versions[instance.name],
            )
            self._faults[instance.name] = served

    def faulted(self) -> dict[str, dict[str, Any] | None]:
        """The fault each instance's inbound Envoy was last given, by instance name."""
        return dict(self._faults)

    def pids(self) -> list[int]:
        return [process.pid for process in self.supervisor.processes]

    # --- life cycle

    def start(self) -> LocalMesh:
        # Entering the supervisor registers it with the atexit and SIGTERM hooks.
        self.supervisor.__enter__()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops the load, then every process; idempotent."""
        try:
            if self.load is not None:
                self.load.stop()
        finally:
            self.supervisor.__exit__(None, None, None)
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalMesh:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self) -> None:
        # Ports first, so Prometheus can be told every target before anything else runs.
        names = [
            (spec, f"{self.service}-{spec.name}-{index}")
            for spec in self.versions
            for index in range(self.instances_per_version)
        ]
        ports = {
            name: (procs.free_port(), procs.free_port(), procs.free_port()) for _, name in names
        }
        self.client_port, client_admin = procs.free_port(), procs.free_port()
        gateway_ports = (procs.free_port(), procs.free_port(), procs.free_port())
        metrics_jobs: dict[str, list[str | prometheus.Target]] = {}
        if self.traces:
            self.jaeger = jaeger.start_jaeger(
                self.supervisor,
                workdir=self.workdir / "jaeger",
                dimensions=SPAN_METRIC_DIMENSIONS,
            )
            metrics_jobs["jaeger"] = [self.jaeger.metrics_address]
        tracing = self.tracing
        targets: dict[str, list[str | prometheus.Target]] = {
            "client-side": [
                prometheus.Target(f"127.0.0.1:{client_admin}", {"role": "client-side"})
            ],
            "inbound": [
                prometheus.Target(
                    f"127.0.0.1:{ports[name][2]}",
                    {"role": "inbound", "version": spec.name, "instance": name},
                )
                for spec, name in names
            ],
        }
        if self.gateway_spec is not None:
            targets["gateway"] = [
                prometheus.Target(f"127.0.0.1:{gateway_ports[0]}", {"role": "gateway"})
            ]
        self.prometheus = prometheus.start_prometheus(
            self.supervisor,
            targets=targets,
            workdir=self.workdir / "prometheus",
            port=procs.free_port(),
            metrics_jobs=metrics_jobs,
        )
        # All apps start at once: each is a Python interpreter start, the slowest step here.
        apps = {
            name: self.supervisor.start(
                name, self._app_argv(spec, ports[name][0], ports[name][1]), env=_app_env()
            )
            for spec, name in names
        }
        if self.mtls:
            self.identities = identity.issue(
                self._ca(),
                namespace=self.namespace,
                service=self.service,
                instances=[name for _, name in names],
            )
            self.inbound_tls = InboundTls(
                self.identities,
                namespace=self.namespace,
                service=self.service,
                port=self.service_port,
                peer_authentications=self.peer_authentications,
            )
        for spec, name in names:
            app_port, listen_port, admin_port = ports[name]
            procs.wait_http(
                f"http://127.0.0.1:{app_port}/healthz", timeout=15.0, process=apps[name]
            )
            inbound_dir = self.workdir / "inbound" / name
            bootstrap = envoy.inbound_bootstrap(
                listen_port=listen_port,
                admin_port=admin_port,
                app_port=app_port,
                name=name,
                workdir=inbound_dir,
                tracing=None
                if tracing is None
                else tracing.tagged(self.service, subset=spec.subset_name, version=spec.name),
                **(self.inbound_tls.for_new_instance(name, spec.name) if self.inbound_tls else {}),
            )
            handle = envoy.start_envoy(
                self.supervisor,
                bootstrap,
                name=f"{name}-inbound",
                admin_port=admin_port,
                workdir=inbound_dir,
            )
            self.instances.append(
                Instance(name, spec.name, apps[name], app_port, handle, listen_port)
            )
        workloads = [
            pilot.Workload(
                name=instance.name,
                namespace=self.namespace,
                host=self.service,
                labels={"app": self.service, "version": instance.version},
                address="127.0.0.1",
                port=instance.listen_port,
                spiffe_id=self.identities.service_id if self.identities else "",
            )
            for instance in self.instances
        ]
        self._pilot = pilot.Pilot(
            xds_dir=self.workdir / "client-side",
            listener_port=self.client_port,
            workloads=workloads,
            mesh_tls=None
            if self.identities is None
            else pilot.MeshTls(
                identity=self.identities.client,
                peer_authentications=tuple(self.peer_authentications),
            ),
            namespace=self.namespace,
            service_port=self.service_port,
            # Traced, the inbound Envoys name their spans by operation, not by the caller's route.
            propagate_operations=tracing is None,
        )
        client_bootstrap = self._pilot.bootstrap(
            admin_port=client_admin,
            node_id="client-side",
            tracing=None if tracing is None else tracing.tagged(CLIENT_SERVICE),
        )
        client_bootstrap.setdefault("stats_config", envoy.stats_config())
        self.client = envoy.start_envoy(
            self.supervisor,
            client_bootstrap,
            name="client-side",
            admin_port=client_admin,
            workdir=self.workdir / "client-side",
        )
        if self.gateway_spec is not None:
            self.gateway = ingress.start_gateway(
                self.supervisor,
                spec=self.gateway_spec,
                workdir=self.workdir / "gateway",
                workloads=workloads,
                ca=self._ca(),
                admin_port=gateway_ports[0],
                http_port=gateway_ports[1],
                https_port=gateway_ports[2],
                service_port=self.service_port,
            )
        self._publishing = Publishing(
            self._pilot, client_admin=self.client.admin_url, gateway=self.gateway
        )
        self.prometheus.wait_targets_up(
            expected=sum(map(len, targets.values())) + sum(map(len, metrics_jobs.values()))
        )
        if self.rate > 0:
            self.load = self._load()

    def _load(self) -> loadgen.LoadGenerator:
        """Users call the service's name through the client side, or the gateway's external
        host through the gateway when the gateway spec names one."""
        url, host, tls = self.client_url, self.service, None
        if self.gateway is not None and self.gateway.publisher.spec.load_host:
            url, host, tls = self.gateway.entry()
        return loadgen.LoadGenerator(
            url,
            rate_per_second=self.rate,
            duration_s=self.duration,
            host_header=host,
            mix=self.mix,
            tls=tls,
        ).start()

    def _app_argv(self, spec: VersionSpec, port: int, inbound_port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "canary.localmesh.app",
            f"--port={port}",
            f"--version={spec.name}",
            f"--error-rate={spec.error_rate}",
            f"--latency-ms={spec.latency_ms}",
            f"--latency-jitter-ms={spec.latency_jitter_ms}",
            f"--slow-op={spec.slow_path}",
            f"--slow-ms={spec.slow_ms}",
            f"--slow-rate={spec.slow_rate}",
            # Checkout asks the inventory through the instance's own inbound Envoy, as a call
            # to another service would go through the sidecar: the call is traced.
            f"--inventory-url=http://127.0.0.1:{inbound_port}",
        ]

    @property
    def _load_host(self) -> str:
        spec = self.gateway_spec
        return spec.load_host if spec is not None and spec.load_host else self.service

    @property
    def inbound_modes(self) -> dict[str, str]:
        """What each instance's inbound Envoy accepts (STRICT, PERMISSIVE, DISABLE); {} without
        mTLS."""
        return {} if self.inbound_tls is None else self.inbound_tls.modes

    def _ca(self) -> LocalCA:
        """The mesh's one root, as Citadel is a cluster's: the workloads' certificates and the
        gateway's are signed by it, so a client that trusts it trusts both."""
        if self._local_ca is None:
            self._local_ca = LocalCA.create(self.workdir / "ca")
        return self._local_ca

    @staticmethod
    def _started(part: T | None) -> T:
        if part is None:
            raise RuntimeError("the local mesh is not started")
        return part

    def describe(self) -> str:
        """Where everything listens, for the demo to print."""
        lines = [f"local mesh for {self.host}  (work dir {self.workdir})"]
        if self.client is not None:
            lines.append(f"  client-side Envoy  {self.client_url}  admin {self.client.admin_url}")
        for instance in self.instances:
            mode = self.inbound_modes.get(instance.name)
            lines.append(
                f"  {instance.name:<14} app :{instance.app_port}  inbound Envoy "
                f":{instance.listen_port}  admin {instance.inbound.admin_url}"
                + (f"  mTLS {mode}" if mode else "")
            )
        if self.gateway is not None:
            lines.append(
                f"  ingress gateway    {self.gateway.http_url}  {self.gateway.https_url}  "
                f"admin {self.gateway.admin_url}  (CA root {self.gateway.ca_root})"
            )
        if self.prometheus is not None:
            lines.append(f"  Prometheus         {self.prometheus.url}")
        if self.jaeger is not None:
            lines.append(
                f"  Jaeger             {self.jaeger.query_url}  OTLP {self.jaeger.otlp_grpc}"
            )
        if self.load is not None:
            mix = ", ".join(f"{r.method} {r.path} x{w}" for r, w in self.mix) or "GET /"
            lines.append(
                f"  load               {self.rate:g} req/s for at most {self.duration:g}s, "
                f"Host: {self._load_host}, {mix}"
            )
        return "\n".join(lines)


def _app_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{_SOURCE_ROOT}{os.pathsep}{path}" if path else str(_SOURCE_ROOT)}
