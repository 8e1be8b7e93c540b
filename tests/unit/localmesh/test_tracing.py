"""The mesh's Envoys trace every request over OTLP/gRPC: the inbound ones as the service, with
their version's subset as a tag and one span name per operation; the client-side one as the
caller. Each config is also checked by Envoy itself (`--mode validate`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from canary.localmesh import envoy
from canary.localmesh.pilot import Pilot, Tracing, Workload
from canary.localmesh.pilot.tracing import COLLECTOR_CLUSTER

TRACING = Tracing("127.0.0.1:4317", "demo")


def _hcm(bootstrap: dict[str, Any]) -> dict[str, Any]:
    listener = bootstrap["static_resources"]["listeners"][0]
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def _cluster(bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
    clusters = bootstrap["static_resources"]["clusters"]
    return next(cluster for cluster in clusters if cluster["name"] == name)


def _inbound(tmp_path: Path, tracing: Tracing | None) -> dict[str, Any]:
    return envoy.inbound_bootstrap(
        listen_port=1001,
        admin_port=1002,
        app_port=1003,
        name="demo-v2-0",
        workdir=tmp_path,
        tracing=tracing,
    )


def test_an_inbound_envoy_traces_every_request_as_its_version(tmp_path: Path) -> None:
    bootstrap = _inbound(tmp_path, TRACING.tagged("demo", subset="v2", version="v2"))
    tracing = _hcm(bootstrap)["tracing"]
    assert tracing["random_sampling"] == {"value": 100.0}
    provider = tracing["provider"]
    assert provider["name"] == "envoy.tracers.opentelemetry"
    assert provider["typed_config"]["service_name"] == "demo"
    assert provider["typed_config"]["grpc_service"]["envoy_grpc"] == {
        "cluster_name": COLLECTOR_CLUSTER
    }
    assert tracing["custom_tags"] == [
        {"tag": "subset", "literal": {"value": "v2"}},
        {"tag": "version", "literal": {"value": "v2"}},
    ]
    listener = bootstrap["static_resources"]["listeners"][0]
    assert listener["traffic_direction"] == "INBOUND"


def test_spans_leave_through_a_static_http2_cluster_to_the_collector(tmp_path: Path) -> None:
    cluster = _cluster(_inbound(tmp_path, TRACING), COLLECTOR_CLUSTER)
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 4317}
    options = cluster["typed_extension_protocol_options"]
    (http,) = options.values()
    # gRPC needs HTTP/2 to the collector.
    assert http["explicit_http_config"] == {"http2_protocol_options": {}}


def test_without_tracing_no_tracer_and_no_collector(tmp_path: Path) -> None:
    bootstrap = _inbound(tmp_path, None)
    assert "tracing" not in _hcm(bootstrap)
    assert [c["name"] for c in bootstrap["static_resources"]["clusters"]] == ["app_demo-v2-0"]


def test_each_operation_has_its_own_span_name() -> None:
    config = envoy.inbound_route_config(app_cluster="app_x")
    routes = config["virtual_hosts"][0]["routes"]
    named = {
        (
            route["match"]["headers"][0]["string_match"]["exact"],
            route["match"]["path"],
        ): route["decorator"]["operation"]
        for route in routes
        if "decorator" in route
    }
    assert named[("GET", "/browse")] == "GET /browse"
    assert named[("POST", "/checkout")] == "POST /checkout"
    # Anything else still reaches the app, through the last route.
    assert routes[-1] == {"match": {"prefix": "/"}, "route": {"cluster": "app_x"}}
    assert all(route["route"] == {"cluster": "app_x"} for route in routes)


def test_a_fault_applies_to_every_operation() -> None:
    fault = {"abort": {"http_status": 503, "percentage": {"numerator": 100}}}
    config = envoy.inbound_route_config(app_cluster="app_x", fault=fault)
    for route in config["virtual_hosts"][0]["routes"]:
        assert (
            route["typed_per_filter_config"]["envoy.filters.http.fault"]["abort"]
            == (fault["abort"])
        )


def test_the_client_side_envoy_traces_as_the_caller(tmp_path: Path) -> None:
    pilot = Pilot(xds_dir=tmp_path, listener_port=1004, workloads=[])
    bootstrap = pilot.bootstrap(admin_port=1005, tracing=TRACING.tagged("loadgen"))
    tracing = _hcm(bootstrap)["tracing"]
    assert tracing["provider"]["typed_config"]["service_name"] == "loadgen"
    assert tracing["custom_tags"] == []
    assert bootstrap["static_resources"]["listeners"][0]["traffic_direction"] == "OUTBOUND"
    assert _cluster(bootstrap, COLLECTOR_CLUSTER)["type"] == "STATIC"
    # Its routes and clusters still come from the Pilot's files.
    assert "cds_config" in bootstrap["dynamic_resources"]


def test_an_untraced_client_side_envoy_has_no_static_cluster(tmp_path: Path) -> None:
    bootstrap = Pilot(xds_dir=tmp_path, listener_port=1004, workloads=[]).bootstrap(admin_port=1005)
    assert "tracing" not in _hcm(bootstrap)
    assert "clusters" not in bootstrap["static_resources"]


@pytest.mark.parametrize(
    ("collector", "service", "sampling"),
    [("4317", "demo", 100.0), ("127.0.0.1:", "demo", 100.0), ("h:1", "", 100.0), ("h:1", "d", 101)],
)
def test_impossible_tracing_is_refused(collector: str, service: str, sampling: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is the user's, tested by eye
        Tracing(collector, service, sampling_percent=sampling)


def test_envoy_accepts_both_configs(tmp_path: Path) -> None:
    inbound = _inbound(tmp_path / "inbound", TRACING.tagged("demo", subset="v1", version="v1"))
    client = Pilot(xds_dir=tmp_path / "client", listener_port=1004, workloads=[]).bootstrap(
        admin_port=1005, tracing=TRACING.tagged("loadgen")
    )
    # Validation does not read the route file: the same routes, inline, with a fault.
    inline = json.loads(json.dumps(inbound))
    manager = _hcm(inline)
    del manager["rds"]
    routes = envoy.inbound_route_config(
        app_cluster="app_demo-v2-0", fault={"delay": {"fixed_delay": "1s"}}
    )
    manager["route_config"] = {k: v for k, v in routes.items() if k != "@type"}
    for name, bootstrap in (("inbound", inbound), ("client", client), ("routes", inline)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(bootstrap))
        checked = subprocess.run(
            [str(envoy.envoy_binary()), "--mode", "validate", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr[-2000:]


def _decorators(pilot: Pilot) -> list[dict[str, Any]]:
    written = json.loads(pilot.rds_path.read_text())
    return [
        route["decorator"]
        for host in written["resources"][0]["virtual_hosts"]
        for route in host["routes"]
        if "decorator" in route
    ]


def test_a_traced_mesh_s_pilot_keeps_its_span_names_to_itself(tmp_path: Path) -> None:
    # istiod's decorators are sent on in x-envoy-decorator-operation, and an inbound Envoy
    # would name its server span with the caller's route instead of the operation.
    workloads = [
        Workload("demo-v1-0", "default", "demo", {"app": "demo", "version": "v1"}, "127.0.0.1", 1)
    ]
    istio = Pilot(xds_dir=tmp_path / "a", listener_port=1004, workloads=workloads)
    local = Pilot(
        xds_dir=tmp_path / "b", listener_port=1004, workloads=workloads, propagate_operations=False
    )
    assert _decorators(istio) == [{"operation": "demo.default.svc.cluster.local:80/*"}]
    assert _decorators(local) == [
        {"operation": "demo.default.svc.cluster.local:80/*", "propagate": False}
    ]
