"""The local Jaeger: Jaeger v2 (cmd/jaeger, v1.75.0) holding spans in memory and turning them
into span metrics for Prometheus.

Jaeger is not a Python package: `tests/jaeger/build` builds it from its Go module into a cache
outside the repository. The binary comes from `CANARY_JAEGER` (the binary), `CANARY_JAEGER_DIR`
(the directory the build printed), or the build cache (`$CANARY_TESTENV_CACHE`, by default
`~/.cache/canary-testenv`, `jaeger-*/jaeger`).

The config is generated per run, and every listener is a free 127.0.0.1 port: without a config
Jaeger binds a dozen fixed ports. Spans come in over OTLP (gRPC and HTTP) and go both to the
in-memory store that `jaeger_query` serves (`/api/traces`, `/api/services`) and to the
`spanmetrics` connector, whose metrics a `prometheus` exporter serves at `/metrics`. The
collector's own telemetry is off (it would bind 8888), and no health check, sampling, pprof,
zipkin or jaeger receivers run.

What the spanmetrics connector emits through the prometheus exporter (v1.75.0, measured):

- `traces_span_metrics_calls_total` (counter) and `traces_span_metrics_duration_milliseconds`
  (histogram: `_bucket` with `le` at the configured bounds in ms and `+Inf`, `_sum` in ms,
  `_count`), each series labelled
  `service_name` (the resource's service.name), `span_name` (the operation),
  `span_kind` (`SPAN_KIND_SERVER`, `SPAN_KIND_CLIENT`, ...),
  `status_code` (`STATUS_CODE_OK`, `STATUS_CODE_ERROR`, `STATUS_CODE_UNSET`),
  one label per dimension, named with every character outside [a-zA-Z0-9_] turned into `_`
  (`subset`, `istio_canonical_revision`) and absent from a series whose spans lack the attribute,
  `job` (the service.name again: a Prometheus scrape keeps its own `job` and renames this one
  `exported_job`), and `otel_scope_name="spanmetricsconnector"`, `otel_scope_schema_url=""`,
  `otel_scope_version=""`.
- A span's counts show on the exporter within one flush interval; a series whose spans stop
  coming stays (the connector never expires it; the exporter drops it after 5 idle minutes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.localmesh import procs

BINARY = "jaeger"
BINARY_ENV = "CANARY_JAEGER"
DIR_ENV = "CANARY_JAEGER_DIR"
_BUILD_HINT = (
    "build it with tests/jaeger/build (it prints the directory to put in CANARY_JAEGER_DIR), "
    "or set CANARY_JAEGER to a jaeger binary"
)

# Latency buckets for a web service, in milliseconds: fine below 100 ms, where a healthy
# request lands, and up to 5 s, where a user has given up.
DEFAULT_BUCKETS_MS: tuple[float, ...] = (2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# One second, so a test or a demo step sees a span's metrics about a second after sending it
# (the connector's default is 60 s).
DEFAULT_FLUSH_INTERVAL = 1.0
MAX_TRACES = 100_000
_STORE = "memstore"

# Measured: a stop took several seconds after SIGTERM; beyond this it is killed.
STOP_GRACE = 10.0


class JaegerNotFound(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class JaegerPorts:
    otlp_grpc: int
    otlp_http: int
    query_http: int
    query_grpc: int
    metrics: int

    @classmethod
    def free(cls) -> JaegerPorts:
        return cls(
            otlp_grpc=procs.free_port(),
            otlp_http=procs.free_port(),
            query_http=procs.free_port(),
            query_grpc=procs.free_port(),
            metrics=procs.free_port(),
        )


@dataclass(frozen=True, slots=True)
class JaegerHandle:
    process: procs.Process
    # `http://127.0.0.1:PORT`: jaeger_query's HTTP API (`/api/traces`, `/api/services`).
    query_url: str
    # `127.0.0.1:PORT`: jaeger_query's gRPC API (api_v2 and api_v3 QueryService).
    query_grpc: str
    # `http://127.0.0.1:PORT`: the OTLP/HTTP receiver; spans go to `{otlp_http}/v1/traces`.
    otlp_http: str
    # `127.0.0.1:PORT`: the OTLP/gRPC receiver.
    otlp_grpc: str
    # `127.0.0.1:PORT`: the prometheus exporter serving the span metrics at `/metrics`.
    metrics_address: str
    config_path: Path

    @property
    def otlp_traces_url(self) -> str:
        return f"{self.otlp_http}/v1/traces"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"


def jaeger_binary() -> Path:
    """CANARY_JAEGER, else `jaeger` in CANARY_JAEGER_DIR, else the newest in the build cache."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return _executable(Path(override), f"{BINARY_ENV}={override}")
    directory = os.environ.get(DIR_ENV)
    if directory:
        return _executable(Path(directory) / BINARY, f"{DIR_ENV}={directory}")
    cache = _cache_root()
    built = [
        path
        for path in cache.glob(f"jaeger-*/{BINARY}")
        # A build in progress stages its output in jaeger-<key>.tmp.<random>.
        if ".tmp." not in path.parent.name and os.access(path, os.X_OK)
    ]
    if not built:
        raise JaegerNotFound(f"no jaeger-*/{BINARY} in {cache}; {_BUILD_HINT}")
    return max(built, key=lambda path: path.stat().st_mtime)


def _executable(path: Path, source: str) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise JaegerNotFound(f"{path} (from {source}) is not an executable file; {_BUILD_HINT}")
    return path


def _cache_root() -> Path:
    configured = os.environ.get("CANARY_TESTENV_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "canary-testenv"


def jaeger_config(
    ports: JaegerPorts,
    *,
    dimensions: Sequence[str] = (),
    buckets_ms: Sequence[float] = DEFAULT_BUCKETS_MS,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
) -> dict[str, Any]:
    """Jaeger v2's config: OTLP in, spans to memory and to span metrics, every port `ports`'."""

    def local(port: int) -> dict[str, str]:
        return {"endpoint": f"127.0.0.1:{port}"}

    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                # No batch processor: spans are stored, and counted, as soon as they arrive.
                "traces": {
                    "receivers": ["otlp"],
                    "exporters": ["jaeger_storage_exporter", "spanmetrics"],
                },
                "metrics/spanmetrics": {"receivers": ["spanmetrics"], "exporters": ["prometheus"]},
            },
            "telemetry": {
                # Level none starts no metrics reader, so nothing listens on 8888.
                "metrics": {"level": "none"},
                "logs": {"level": "info"},
            },
        },
        "extensions": {
            "jaeger_storage": {"backends": {_STORE: {"memory": {"max_traces": MAX_TRACES}}}},
            "jaeger_query": {
                "storage": {"traces": _STORE},
                "http": local(ports.query_http),
                "grpc": local(ports.query_grpc),
                # Its own spans would land in the store it serves, next to the ones under test.
                "enable_tracing": False,
            },
        },
        "receivers": {
            "otlp": {"protocols": {"grpc": local(ports.otlp_grpc), "http": local(ports.otlp_http)}}
        },
        "connectors": {
            "spanmetrics": {
                "dimensions": [{"name": name} for name in dimensions],
                "histogram": {
                    "unit": "ms",
                    "explicit": {"buckets": [f"{bucket:g}ms" for bucket in buckets_ms]},
                },
                "metrics_flush_interval": f"{flush_interval:g}s",
            }
        },
        "exporters": {
            "jaeger_storage_exporter": {"trace_storage": _STORE},
            "prometheus": local(ports.metrics),
        },
    }


def start_jaeger(
    supervisor: procs.Supervisor,
    *,
    workdir: Path,
    dimensions: Sequence[str] = (),
    buckets_ms: Sequence[float] = DEFAULT_BUCKETS_MS,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    binary: Path | None = None,
    timeout: float = 30.0,
) -> JaegerHandle:
    """Writes the config, starts Jaeger on free loopback ports and waits until it takes spans.

    `dimensions` are span attribute names (`subset`, `istio.canonical_revision`) that become
    labels of the span metrics, besides service, span name, kind and status. `binary` defaults
    to `jaeger_binary()`.
    """
    binary = binary or jaeger_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    ports = JaegerPorts.free()
    config_path = workdir / "jaeger.yaml"
    config = jaeger_config(
        ports, dimensions=dimensions, buckets_ms=buckets_ms, flush_interval=flush_interval
    )
    # JSON is YAML, and needs no YAML writer here.
    config_path.write_text(json.dumps(config, indent=2))
    process = supervisor.start("jaeger", [str(binary), "--config", str(config_path)], cwd=workdir)
    handle = JaegerHandle(
        process=process,
        query_url=f"http://127.0.0.1:{ports.query_http}",
        query_grpc=f"127.0.0.1:{ports.query_grpc}",
        otlp_http=f"http://127.0.0.1:{ports.otlp_http}",
        otlp_grpc=f"127.0.0.1:{ports.otlp_grpc}",
        metrics_address=f"127.0.0.1:{ports.metrics}",
        config_path=config_path,
    )
    try:
        procs.wait_http(f"{handle.query_url}/api/services", timeout=timeout, process=process)
        # Extensions start before the pipelines: the query API answers a moment before the
        # OTLP receiver listens. A GET there is refused (405) once it does.
        procs.wait_http(handle.otlp_traces_url, timeout=timeout, expect=405, process=process)
    except BaseException:
        stop(handle)
        raise
    return handle


def stop(handle: JaegerHandle, *, grace: float = STOP_GRACE) -> None:
    """SIGTERM to Jaeger's process group, up to `grace` seconds to go, then SIGKILL."""
    handle.process.stop(grace=grace)
