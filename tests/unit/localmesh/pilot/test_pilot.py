"""The Pilot without Envoy: what it writes, when it bumps the version, and how it reads "applied".

The admin API is played by a stdlib HTTP server in a thread that serves a config dump shaped like
Envoy 1.40's; the real Envoy is in tests/e2e/pilot/.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from canary.localmesh import pilot
from tests.unit.localmesh.pilot.objects import (
    Json,
    demo_workloads,
    destination_rule,
    to,
    virtual_service,
)

ROUTES_DUMP = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
CLUSTERS_DUMP = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"


def _pilot(xds_dir: Path) -> pilot.Pilot:
    return pilot.Pilot(xds_dir=xds_dir, listener_port=15001, workloads=demo_workloads())


def _split(canary: int) -> Json:
    return virtual_service({"route": to(("v1", 100 - canary), ("v2", canary))})


def _file(path: Path) -> Json:
    loaded: Json = json.loads(path.read_text())
    return loaded


def test_a_new_pilot_writes_the_default_routes_as_version_0(tmp_path: Path) -> None:
    found = _pilot(tmp_path)
    assert found.version == 0
    rds, cds = _file(tmp_path / "rds.json"), _file(tmp_path / "cds.json")
    assert rds["version_info"] == cds["version_info"] == "0"
    assert rds["resources"][0]["name"] == "80"
    assert [c["name"] for c in cds["resources"]] == ["outbound|80||demo.default.svc.cluster.local"]


def test_each_change_gets_the_next_version_and_no_change_keeps_it(tmp_path: Path) -> None:
    found = _pilot(tmp_path)
    assert found.push([_split(0)], [destination_rule()]) == 1
    assert found.push([_split(10)], [destination_rule()]) == 2
    before = (tmp_path / "rds.json").stat().st_ino
    assert found.push([_split(10)], [destination_rule()]) == 2
    assert (tmp_path / "rds.json").stat().st_ino == before  # not rewritten


def test_a_route_change_rewrites_only_rds_and_a_policy_change_only_cds(tmp_path: Path) -> None:
    found = _pilot(tmp_path)
    found.push([_split(0)], [destination_rule()])
    found.push([_split(20)], [destination_rule()])
    assert _file(tmp_path / "rds.json")["version_info"] == "2"
    assert _file(tmp_path / "cds.json")["version_info"] == "1"
    stricter = destination_rule(trafficPolicy={"outlierDetection": {"consecutive5xxErrors": 2}})
    assert found.push([_split(20)], [stricter]) == 3
    assert _file(tmp_path / "rds.json")["version_info"] == "2"
    assert _file(tmp_path / "cds.json")["version_info"] == "3"


def test_a_refused_push_writes_nothing(tmp_path: Path) -> None:
    found = _pilot(tmp_path)
    found.push([_split(10)], [destination_rule()])
    files = {name: (tmp_path / name).read_bytes() for name in ("rds.json", "cds.json")}
    broken = virtual_service({"route": to(("v1", 50), ("v3", 50))})
    with pytest.raises(pilot.TranslationError, match=r"spec\.http\[0\]\.route\[1\]"):
        found.push([broken], [destination_rule()])
    assert found.version == 1
    assert {name: (tmp_path / name).read_bytes() for name in files} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cds.json", "rds.json"]


def test_a_restarted_pilot_counts_on_from_the_files(tmp_path: Path) -> None:
    first = _pilot(tmp_path)
    first.push([_split(10)], [destination_rule()])
    first.push([_split(30)], [destination_rule()])
    again = _pilot(tmp_path)
    # The files hold the pushed objects, not the defaults: the defaults are a change.
    assert again.version == 3
    assert again.push([_split(30)], [destination_rule()]) == 4


def test_bootstrap_reads_both_files_with_the_fault_filter_before_the_router(tmp_path: Path) -> None:
    config = _pilot(tmp_path).bootstrap(admin_port=15000)
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 15000,
    }
    assert config["dynamic_resources"]["cds_config"]["path_config_source"]["path"] == str(
        tmp_path / "cds.json"
    )
    (listener,) = config["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 15001
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["rds"]["route_config_name"] == "80"
    assert manager["rds"]["config_source"]["path_config_source"]["path"] == str(
        tmp_path / "rds.json"
    )
    assert [f["name"] for f in manager["http_filters"]] == [
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]


class _Admin:
    """A stand-in for Envoy's admin API that serves whatever dump the test sets."""

    def __init__(self) -> None:
        self.dump: Json = {"configs": []}
        admin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(admin.dump).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def accepted(self, *, rds: str | None, cds: str | None) -> None:
        routes: Json = {"@type": ROUTES_DUMP, "static_route_configs": []}
        if rds is not None:
            routes["dynamic_route_configs"] = [
                {"version_info": rds, "route_config": {"name": "80"}, "last_updated": "x"}
            ]
        clusters: Json = {"@type": CLUSTERS_DUMP, "static_clusters": []}
        if cds is not None:
            clusters["version_info"] = cds
        self.dump = {"configs": [clusters, routes]}


@pytest.fixture
def admin() -> Iterator[_Admin]:
    server = _Admin()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        thread.join(timeout=5)


def test_applied_version_needs_both_route_and_clusters_to_be_accepted(
    tmp_path: Path, admin: _Admin
) -> None:
    found = _pilot(tmp_path)
    found.push([_split(0)], [destination_rule()])  # v1: rds 1, cds 1
    found.push([_split(10)], [destination_rule()])  # v2: rds 2, cds 1
    stricter = destination_rule(trafficPolicy={"outlierDetection": {"consecutive5xxErrors": 2}})
    found.push([_split(10)], [stricter])  # v3: rds 2, cds 3
    admin.accepted(rds=None, cds="0")
    assert found.applied_version(admin.url) is None
    admin.accepted(rds="0", cds="0")
    assert found.applied_version(admin.url) == 0
    admin.accepted(rds="2", cds="1")
    assert found.applied_version(admin.url) == 2
    # Envoy keeps the RDS version of unchanged content, so v3 is applied with RDS still at 2.
    admin.accepted(rds="2", cds="3")
    assert found.applied_version(admin.url) == 3


def test_applied_version_is_none_when_envoy_cannot_be_asked(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    assert _pilot(tmp_path).applied_version(f"http://127.0.0.1:{port}") is None
    assert time.monotonic() - started < 3
