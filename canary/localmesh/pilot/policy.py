"""A DestinationRule `trafficPolicy` as the Envoy cluster fields it sets, merged as istiod merges.

Each block (connectionPool, outlierDetection, loadBalancer, tls) is translated once, where it is
written, into the cluster fields it sets (tls into its mode: `mtls.py` makes the socket), so a
problem in the host-level policy is reported once and not again for every subset. The merge
then works on whole blocks, as istiod's MergeTrafficPolicy does: a block set at the subset
replaces the host's block entirely (its unset fields fall back to defaults, not to the host's
values), and port-level settings for the service port replace all four blocks, set or not.

The translations follow istiod's cluster builder: outlier detection turns success-rate ejection
off and enforces consecutive errors at 100%, and `minHealthPercent` is the panic threshold, 0
when unset, so that a service with few endpoints can eject them all; a load balancer left
unspecified is LEAST_REQUEST. Connection pools have a module of their own (connection_pool.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from canary.localmesh.pilot import connection_pool, fields
from canary.localmesh.pilot.fields import Json, Report

_BLOCK_KEYS = {"connectionPool", "outlierDetection", "loadBalancer", "tls"}
_POLICY_REFUSED = {
    "tunnel": "the local mesh does not tunnel",
    "proxyProtocol": "the local mesh's workloads do not speak the PROXY protocol",
    "retryBudget": "not implemented by the local mesh's Pilot",
}
_TLS_REFUSED = dict.fromkeys(
    (
        "clientCertificate",
        "privateKey",
        "caCertificates",
        "credentialName",
        "subjectAltNames",
        "sni",
        "insecureSkipVerify",
        "caCrl",
    ),
    "the local mesh's Pilot honours tls.mode alone, with the mesh's own certificates",
)
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
    # The tls mode (ISTIO_MUTUAL or DISABLE; None: unset, so auto mTLS) and where it was written.
    tls: str | None = None
    tls_path: str = ""
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
        if subset.tls is not None or subset.port_level:
            merged = dataclasses.replace(merged, tls=subset.tls, tls_path=subset.tls_path)
        return merged

    def cluster_fields(self) -> Json:
        out = dict(self.connection_pool or connection_pool.default())
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
    tls = mtls_mode(report, found, path)
    return Policy(
        tls=tls,
        tls_path=f"{path}.tls" if tls else "",
        connection_pool=_block(report, found, "connectionPool", path, connection_pool.translate),
        outlier_detection=_block(report, found, "outlierDetection", path, outlier_detection),
        load_balancer=_block(report, found, "loadBalancer", path, load_balancer),
    )


def mtls_mode(report: Report, found: Mapping[str, Any], path: str) -> str | None:
    """The `tls.mode` under `found`: ISTIO_MUTUAL or DISABLE; None when unset (auto mTLS)."""
    tls = fields.get_map(report, found, "tls", path)
    if tls is None:
        return None
    here = f"{path}.tls"
    fields.check_keys(report, tls, here, supported={"mode"}, refused=_TLS_REFUSED)
    mode = fields.get_str(report, tls, "mode", here) or "DISABLE"
    if mode in ("SIMPLE", "MUTUAL"):
        report.refuse(f"{here}.mode", f"{mode}: the local mesh originates no TLS of your own")
        return None
    if mode not in ("ISTIO_MUTUAL", "DISABLE"):
        report.invalid(f"{here}.mode", f"unknown tls mode {mode!r}")
        return None
    return mode


def _block(
    report: Report,
    found: Mapping[str, Any],
    key: str,
    path: str,
    translate: Callable[[Report, Mapping[str, Any], str], Json],
) -> Json | None:
    block = fields.get_map(report, found, key, path)
    return None if block is None else translate(report, block, f"{path}.{key}")


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
