"""The client-side Envoy's bootstrap: a static listener whose routes and clusters come from files.

Only the listener is static. Its HTTP connection manager takes the route configuration by RDS and
the clusters come by CDS, both from filesystem xDS files in the Pilot's directory, so the Pilot
changes routing by replacing a file and Envoy never restarts. The filter chain is istiod's for
HTTP outbound in miniature: the fault filter (present, empty, so that a route's
typed_per_filter_config can inject faults) and then the router.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canary.localmesh.pilot.model import FAULT_FILTER, FAULT_TYPE
from canary.localmesh.pilot.tracing import Tracing, collector_cluster, http_tracing

Json = dict[str, Any]

_HCM = "envoy.filters.network.http_connection_manager"
_HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
_ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"


def file_source(path: Path) -> Json:
    """A ConfigSource reading one xDS file.

    Envoy 1.40 sees a file renamed onto `path` without `watched_directory` (it watches the parent
    directory for moves to that name); a watched directory would make every rename in it reload
    both files, for nothing.
    """
    return {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"}


def bootstrap(
    *,
    node_id: str,
    admin_port: int,
    listener_port: int,
    service_port: int,
    route_name: str,
    cds_path: Path,
    rds_path: Path,
    access_log: Path | None = None,
    tracing: Tracing | None = None,
) -> Json:
    manager: Json = {
        "@type": _HCM_TYPE,
        # istiod's stat prefix for an outbound HTTP listener, so stats read as they do in a cluster.
        "stat_prefix": f"outbound_0.0.0.0_{service_port}",
        "rds": {"config_source": file_source(rds_path), "route_config_name": route_name},
        "http_filters": [
            {"name": FAULT_FILTER, "typed_config": {"@type": FAULT_TYPE}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_TYPE}},
        ],
    }
    if access_log is not None:
        manager["access_log"] = [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {"@type": _FILE_LOG_TYPE, "path": str(access_log)},
            }
        ]
    static_clusters: list[Json] = []
    if tracing is not None:
        manager["tracing"] = http_tracing(tracing)
        static_clusters.append(collector_cluster(tracing))
    static: Json = {
        "listeners": [
            {
                "name": f"outbound_{service_port}",
                "address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": listener_port}
                },
                # Outbound: the tracer makes client spans, as a sidecar's outbound listener does.
                "traffic_direction": "OUTBOUND",
                "filter_chains": [{"filters": [{"name": _HCM, "typed_config": manager}]}],
            }
        ]
    }
    if static_clusters:
        static["clusters"] = static_clusters
    return {
        "node": {"id": node_id, "cluster": node_id},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": static,
        "dynamic_resources": {"cds_config": file_source(cds_path)},
        # Envoy 1.40 warns at start-up when downstream connections are unbounded.
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors"
                        ".downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 4096,
                    },
                }
            ]
        },
    }
