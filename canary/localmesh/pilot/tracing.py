"""Tracing for the mesh's Envoys: OpenTelemetry spans over OTLP/gRPC, as istiod gives sidecars.

Every Envoy of the mesh can trace with `envoy.tracers.opentelemetry`: its HTTP connection
manager samples every request (the demo's load is small, and a trace check judges a
percentile, which a sample of one request in a hundred would starve) and sends the spans over
OTLP/gRPC to a collector reached through a static cluster of its own, speaking HTTP/2. The
service name becomes the spans' `service.name` resource attribute, which Jaeger shows as the
process's service name; literal custom tags (an inbound Envoy's `subset` and `version`) go on
every span, so a trace check can ask for one version's spans by tag, as it asks for
`istio.canonical_revision` in a cluster.

Envoy's tracer batches spans and flushes them every few seconds or every few spans, so a span
reaches the collector up to ~5 s after its request ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

COLLECTOR_CLUSTER = "otlp_collector"
_OTEL_TYPE = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


@dataclass(frozen=True, slots=True)
class Tracing:
    """Where one Envoy's spans go and what they say about it.

    `collector` is the `host:port` of an OTLP/gRPC receiver (Jaeger's, say).
    """

    collector: str
    service_name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    sampling_percent: float = 100.0

    def __post_init__(self) -> None:
        host, _, port = self.collector.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"collector must be host:port, got {self.collector!r}")
        if not 0.0 <= self.sampling_percent <= 100.0:
            raise ValueError(f"sampling must be within [0, 100], got {self.sampling_percent}")
        if not self.service_name:
            raise ValueError("a tracing Envoy needs a service name")

    def tagged(self, service_name: str, **tags: str) -> Tracing:
        """The same collector for another Envoy: its own service name and tags."""
        return Tracing(self.collector, service_name, dict(tags), self.sampling_percent)


def http_tracing(tracing: Tracing) -> Json:
    """The `tracing` field of an HTTP connection manager."""
    provider = {
        "name": "envoy.tracers.opentelemetry",
        "typed_config": {
            "@type": _OTEL_TYPE,
            "grpc_service": {
                "envoy_grpc": {"cluster_name": COLLECTOR_CLUSTER},
                # An export that takes longer is dropped: losing spans beats stalling a worker.
                "timeout": "1s",
            },
            "service_name": tracing.service_name,
        },
    }
    return {
        "provider": provider,
        "random_sampling": {"value": tracing.sampling_percent},
        "custom_tags": [
            {"tag": name, "literal": {"value": value}}
            for name, value in sorted(tracing.tags.items())
        ],
    }


def collector_cluster(tracing: Tracing) -> Json:
    """The static cluster the tracer exports through: the collector's address, HTTP/2 (gRPC)."""
    host, _, port = tracing.collector.rpartition(":")
    endpoint = {
        "endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}
    }
    return {
        "name": COLLECTOR_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": COLLECTOR_CLUSTER,
            "endpoints": [{"lb_endpoints": [endpoint]}],
        },
    }
