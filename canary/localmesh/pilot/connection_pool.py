"""A DestinationRule `connectionPool` as Envoy circuit breakers and upstream HTTP options.

As istiod writes it: every threshold starts at the maximum, because Envoy's own defaults (1024
connections and requests, 3 retries) are small enough to trip under a canary's load and would
turn away (503) requests the user never asked to limit; a 0 reads as unset. A cluster without a pool
still gets those thresholds and the mesh's 10 s connect timeout. Idle timeouts, requests per
connection and connection lifetimes go into the upstream HttpProtocolOptions, which Envoy wants
with an explicit HTTP/1.1 config beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canary.localmesh.pilot import fields
from canary.localmesh.pilot.fields import Json, Report
from canary.localmesh.pilot.model import DEFAULT_CONNECT_TIMEOUT

_MAX = 2**32 - 1
_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def default() -> Json:
    """What istiod gives a cluster whose policy has no connectionPool."""
    return translate(Report("default"), {}, "")


def translate(report: Report, pool: Mapping[str, Any], path: str) -> Json:
    fields.check_keys(report, pool, path, supported={"tcp", "http"})
    thresholds: Json = {
        "max_connections": _MAX,
        "max_pending_requests": _MAX,
        "max_requests": _MAX,
        "max_retries": _MAX,
        "track_remaining": True,
    }
    out: Json = {"connect_timeout": DEFAULT_CONNECT_TIMEOUT}
    common: Json = {}
    http = fields.get_map(report, pool, "http", path)
    if http is not None:
        where = f"{path}.http"
        fields.check_keys(
            report,
            http,
            where,
            supported={
                "http1MaxPendingRequests",
                "http2MaxRequests",
                "maxRequestsPerConnection",
                "maxRetries",
                "idleTimeout",
                "h2UpgradePolicy",
                "useClientProtocol",
            },
            refused={
                "maxConcurrentStreams": "HTTP/2 only; the local mesh's workloads speak HTTP/1.1",
                "http2KeepAlive": "HTTP/2 only; the local mesh's workloads speak HTTP/1.1",
            },
        )
        # istiod treats 0 as unset: the defaults stay.
        for key, envoy in (
            ("http2MaxRequests", "max_requests"),
            ("http1MaxPendingRequests", "max_pending_requests"),
            ("maxRetries", "max_retries"),
        ):
            value = fields.get_int(report, http, key, where, maximum=2**31 - 1)
            if value:
                thresholds[envoy] = value
        per_connection = fields.get_int(report, http, "maxRequestsPerConnection", where)
        if per_connection:
            common["max_requests_per_connection"] = per_connection
        idle = fields.get_duration(report, http, "idleTimeout", where)
        if idle is not None:
            common["idle_timeout"] = idle
        upgrade = fields.get_str(report, http, "h2UpgradePolicy", where)
        if upgrade == "UPGRADE":
            report.refuse(f"{where}.h2UpgradePolicy", "the local mesh's workloads speak HTTP/1.1")
        elif upgrade not in (None, "DEFAULT", "DO_NOT_UPGRADE"):
            report.invalid(f"{where}.h2UpgradePolicy", f"unknown value {upgrade!r}")
        if fields.get_bool(report, http, "useClientProtocol", where):
            report.refuse(f"{where}.useClientProtocol", "the local mesh's workloads speak HTTP/1.1")
    tcp = fields.get_map(report, pool, "tcp", path)
    if tcp is not None:
        _tcp(report, tcp, f"{path}.tcp", thresholds=thresholds, common=common, out=out)
    out["circuit_breakers"] = {"thresholds": [thresholds]}
    if common:
        out["typed_extension_protocol_options"] = {
            _PROTOCOL_OPTIONS: {
                "@type": f"type.googleapis.com/{_PROTOCOL_OPTIONS}",
                "common_http_protocol_options": common,
                "explicit_http_config": {"http_protocol_options": {}},
            }
        }
    return out


def _tcp(
    report: Report, tcp: Mapping[str, Any], path: str, *, thresholds: Json, common: Json, out: Json
) -> None:
    fields.check_keys(
        report,
        tcp,
        path,
        supported={
            "maxConnections",
            "connectTimeout",
            "maxConnectionDuration",
            "idleTimeout",
            "tcpKeepalive",
        },
    )
    connect = fields.get_duration(report, tcp, "connectTimeout", path, positive=True)
    if connect is not None:
        out["connect_timeout"] = connect
    connections = fields.get_int(report, tcp, "maxConnections", path, maximum=2**31 - 1)
    if connections:
        thresholds["max_connections"] = connections
    duration = fields.get_duration(report, tcp, "maxConnectionDuration", path, positive=True)
    if duration is not None:
        common["max_connection_duration"] = duration
    idle = fields.get_duration(report, tcp, "idleTimeout", path)
    if idle is not None:
        common.setdefault("idle_timeout", idle)  # the http idleTimeout wins, as in istiod
    keepalive = fields.get_map(report, tcp, "tcpKeepalive", path)
    if keepalive is not None:
        where = f"{path}.tcpKeepalive"
        fields.check_keys(report, keepalive, where, supported={"probes", "time", "interval"})
        settings: Json = {}
        probes = fields.get_int(report, keepalive, "probes", where)
        if probes is not None:
            settings["keepalive_probes"] = probes
        for key in ("time", "interval"):
            value = fields.get_duration(report, keepalive, key, where)
            if value is not None:
                # Envoy counts keepalive time and interval in whole seconds.
                nanos = fields.parse_duration(value) or 0
                settings[f"keepalive_{key}"] = max(1, nanos // 10**9)
        out["upstream_connection_options"] = {"tcp_keepalive": settings}
