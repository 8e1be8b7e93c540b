"""A DestinationRule `trafficPolicy` as the Envoy cluster fields it sets, merged as istiod merges.

Each block (connectionPool, outlierDetection, loadBalancer, tls) is translated once, where it is
written, into the cluster fields it sets, so a problem in the host-level policy is reported once
and not again for every subset. The merge then works on whole blocks, as istiod's
MergeTrafficPolicy does: a block set at the subset replaces the host's block entirely (its
unset fields fall back to defaults, not to the host's values), and port-level settings for the
service port replace all four blocks, set or not.

The translations follow istiod's cluster builder: circuit-breaker thresholds default to the
maximum (Envoy's own defaults are small enough to trip under a canary's load), outlier detection
turns success-rate ejection off and enforces consecutive errors at 100%, and `minHealthPercent`
is the panic threshold, 0 when unset, so that a service with few endpoints can eject them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.localmesh.pilot import fields
from canary.localmesh.pilot.fields import Json, Report
from canary.localmesh.pilot.model import DEFAULT_CONNECT_TIMEOUT

_MAX = 2**32 - 1
_BLOCK_KEYS = {"connectionPool", "outlierDetection", "loadBalancer", "tls"}
_POLICY_REFUSED = {
    "tunnel": "the local mesh does not tunnel",
    "proxyProtocol": "the local mesh's workloads do not speak the PROXY protocol",
    "retryBudget": "not implemented by the local mesh's Pilot",
}
_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_LB_POLICIES = {
    "UNSPECIFIED": "LEAST_REQUEST",  # istiod's default
    "LEAST_REQUEST": "LEAST_REQUEST",
    "LEAST_CONN": "LEAST_REQUEST",  # deprecated alias
    "ROUND_ROBIN": "ROUND_ROBIN",
    "RANDOM": "RANDOM",
}


@dataclass(frozen=True, slots=True)
class Policy:
    """A traffic policy resolved for the service port; each block is the cluster fields it sets."""

    connection_pool: Json | None = None
    outlier_detection: Json | None = None
    load_balancer: Json | None = None
    # From port-level settings: then every block replaces, set or not (istiod's hasPortLevel).
    port_level: bool = False

    def under(self, subset: Policy | None) -> Policy:
        """This (host-level) policy with a subset's policy merged over it."""
        if subset is None:
            return self
        merged = self
        for block in ("connection_pool", "outlier_detection", "load_balancer"):
            value = getattr(subset, block)
            if value is not None or subset.port_level:
                merged = dataclasses.replace(merged, **{block: value})
        return merged

    def cluster_fields(self) -> Json:
        out = dict(self.connection_pool or default_connection_pool())
        out.update(self.load_balancer or {"lb_policy": _LB_POLICIES["UNSPECIFIED"]})
        if self.outlier_detection is not None:
            out.update(self.outlier_detection)
        return out


def read(report: Report, parent: Mapping[str, Any], path: str, *, port: int) -> Policy | None:
    """The `trafficPolicy` under `parent`, resolved for `port`; None when there is none."""
    found = fields.get_map(report, parent, "trafficPolicy", path)
    if found is None:
        return None
    here = f"{path}.trafficPolicy"
    supported = _BLOCK_KEYS | {"portLevelSettings"}
    fields.check_keys(report, found, here, supported=supported, refused=_POLICY_REFUSED)
    policy = _blocks(report, found, here)
    for index, entry in enumerate(fields.get_list(report, found, "portLevelSettings", here) or []):
        where = f"{here}.portLevelSettings[{index}]"
        setting = fields.mapping(report, entry, where)
        if setting is None:
            continue
        fields.check_keys(report, setting, where, supported=_BLOCK_KEYS | {"port"})
        selector = fields.get_map(report, setting, "port", where) or {}
        fields.check_keys(report, selector, f"{where}.port", supported={"number"})
        number = fields.get_int(report, selector, "number", f"{where}.port", maximum=65535)
        level = _blocks(report, setting, where)
        if number != port:
            report.refuse(f"{where}.port", f"the local mesh serves only port {port}")
        elif not policy.port_level:  # the first match wins, as in istiod
            policy = dataclasses.replace(level, port_level=True)
    return policy


def _blocks(report: Report, found: Mapping[str, Any], path: str) -> Policy:
    pool = fields.get_map(report, found, "connectionPool", path)
    outlier = fields.get_map(report, found, "outlierDetection", path)
    balancer = fields.get_map(report, found, "loadBalancer", path)
    tls = fields.get_map(report, found, "tls", path)
    if tls is not None and (tls.get("mode") != "DISABLE" or set(tls) != {"mode"}):
        report.refuse(f"{path}.tls", "the local mesh has no mTLS and originates no TLS")
    return Policy(
        connection_pool=None
        if pool is None
        else connection_pool(report, pool, f"{path}.connectionPool"),
        outlier_detection=None
        if outlier is None
        else outlier_detection(report, outlier, f"{path}.outlierDetection"),
        load_balancer=None
        if balancer is None
        else load_balancer(report, balancer, f"{path}.loadBalancer"),
    )


def default_connection_pool() -> Json:
    """What istiod gives a cluster whose policy has no connectionPool."""
    return connection_pool(Report("default"), {}, "")


def connection_pool(report: Report, pool: Mapping[str, Any], path: str) -> Json:
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
        if fields.get_str(report, http, "h2UpgradePolicy", where) == "UPGRADE":
            report.refuse(f"{where}.h2UpgradePolicy", "the local mesh's workloads speak HTTP/1.1")
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


def outlier_detection(report: Report, outlier: Mapping[str, Any], path: str) -> Json:
    fields.check_keys(
        report,
        outlier,
        path,
        supported={
            "consecutive5xxErrors",
            "consecutiveGatewayErrors",
            "interval",
            "baseEjectionTime",
            "maxEjectionPercent",
            "minHealthPercent",
            "splitExternalLocalOriginErrors",
            "consecutiveLocalOriginFailures",
        },
        refused={"consecutiveErrors": "removed from Istio's API; use consecutive5xxErrors"},
    )
    out: Json = {"enforcing_success_rate": 0}
    for key, envoy in (
        ("consecutive5xxErrors", "consecutive_5xx"),
        ("consecutiveGatewayErrors", "consecutive_gateway_failure"),
    ):
        value = fields.get_int(report, outlier, key, path)
        if value is not None:
            out[envoy] = value
            out[f"enforcing_{envoy}"] = 100 if value > 0 else 0
    for key, envoy in (("interval", "interval"), ("baseEjectionTime", "base_ejection_time")):
        value_text = fields.get_duration(report, outlier, key, path, positive=True)
        if value_text is not None:
            out[envoy] = value_text
    most = fields.get_int(report, outlier, "maxEjectionPercent", path, maximum=100)
    if most:
        out["max_ejection_percent"] = most
    if fields.get_bool(report, outlier, "splitExternalLocalOriginErrors", path):
        out["split_external_local_origin_errors"] = True
        local = fields.get_int(report, outlier, "consecutiveLocalOriginFailures", path)
        if local:
            out["consecutive_local_origin_failure"] = local
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    elif "consecutiveLocalOriginFailures" in outlier:
        report.invalid(
            f"{path}.consecutiveLocalOriginFailures", "needs splitExternalLocalOriginErrors: true"
        )
    panic = fields.get_int(report, outlier, "minHealthPercent", path, maximum=100) or 0
    return {
        "outlier_detection": out,
        "common_lb_config": {"healthy_panic_threshold": {"value": panic}},
    }


def load_balancer(report: Report, balancer: Mapping[str, Any], path: str) -> Json:
    fields.check_keys(
        report,
        balancer,
        path,
        supported={"simple", "warmupDurationSecs"},
        refused={
            "consistentHash": "hash-based routing is not implemented by the local mesh's Pilot",
            "localityLbSetting": "the local mesh has one locality",
            "warmup": "not implemented by the local mesh's Pilot; use warmupDurationSecs",
        },
    )
    simple = fields.get_str(report, balancer, "simple", path) or "UNSPECIFIED"
    if simple == "PASSTHROUGH":
        report.refuse(f"{path}.simple", "PASSTHROUGH needs original-destination routing")
    elif simple not in _LB_POLICIES:
        report.invalid(f"{path}.simple", f"unknown load balancer {simple!r}")
    policy = _LB_POLICIES.get(simple, "LEAST_REQUEST")
    out: Json = {"lb_policy": policy}
    warmup = fields.get_duration(report, balancer, "warmupDurationSecs", path, positive=True)
    if warmup is not None:
        if policy == "RANDOM":
            report.refuse(
                f"{path}.warmupDurationSecs", "Envoy warms up ROUND_ROBIN and LEAST_REQUEST only"
            )
        config = "round_robin_lb_config" if policy == "ROUND_ROBIN" else "least_request_lb_config"
        out[config] = {"slow_start_config": {"slow_start_window": warmup}}
    return out
