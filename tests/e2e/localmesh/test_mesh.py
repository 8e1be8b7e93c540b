"""The whole local mesh, for real: a 50/50 split reaches Envoy, Prometheus sees v2's 5xx, and
nothing outlives `stop()`."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from canary.localmesh import mesh, procs

SERVICE = "demo"
V2_CLUSTER = f"outbound|80|v2|{SERVICE}.default.svc.cluster.local"
V1_CLUSTER = f"outbound|80|v1|{SERVICE}.default.svc.cluster.local"


def _virtual_service(v1: int, v2: int) -> dict[str, Any]:
    route = [
        {"destination": {"host": SERVICE, "subset": "v1"}, "weight": v1},
        {"destination": {"host": SERVICE, "subset": "v2"}, "weight": v2},
    ]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": SERVICE, "namespace": "default"},
        "spec": {"hosts": [SERVICE], "http": [{"name": "primary", "route": route}]},
    }


def _destination_rule() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": SERVICE, "namespace": "default"},
        "spec": {
            "host": SERVICE,
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }


def _query(prometheus_url: str, promql: str) -> dict[str, float]:
    """Instant query; the value of each series, keyed by its response code class."""
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return {
        series["metric"].get("envoy_response_code_class", ""): float(series["value"][1])
        for series in body["data"]["result"]
    }


def _by_class(prometheus_url: str, cluster: str) -> dict[str, float]:
    return _query(
        prometheus_url,
        "sum by (envoy_response_code_class) (envoy_cluster_upstream_rq_xx"
        f'{{job="client-side",envoy_cluster_name="{cluster}"}})',
    )


def _poll(what: str, check: Callable[[], str | None], *, timeout: float) -> None:
    """Polls `check` (None: done, else why not) every 0.2 s, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    why = check()
    while why is not None:
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s: {why}"
        time.sleep(0.2)
        why = check()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_a_split_reaches_envoy_and_prometheus_sees_the_failing_version(
    tmp_path: Path, envoy_path: Path, prometheus_path: Path
) -> None:
    versions = [mesh.VersionSpec("v1", error_rate=0.0), mesh.VersionSpec("v2", error_rate=0.5)]
    started = time.monotonic()
    with mesh.LocalMesh(
        service=SERVICE, versions=versions, workdir=tmp_path, rate=40, duration=60
    ) as local:
        startup = time.monotonic() - started
        pids = local.pids()
        print(f"mesh up in {startup:.2f}s\n{local.describe()}")
        assert len(pids) == 1 + 4 + 4 + 1  # Prometheus, apps, inbound Envoys, client side

        version = local.push([_virtual_service(50, 50)], [_destination_rule()])
        deadline = time.monotonic() + 10
        while (local.applied_version() or 0) < version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert local.applied_version() == version
        assert local.load is not None
        before = local.load.snapshot().by_version()

        load = local.load
        found: dict[str, dict[str, float]] = {}

        def scraped() -> str | None:
            """Until Prometheus has scraped v1's 2xx and v2's 2xx and 5xx, and users got 200
            answers since the split (enough for a share to mean something)."""
            found["v2"] = _by_class(local.prometheus_url, V2_CLUSTER)
            found["v1"] = _by_class(local.prometheus_url, V1_CLUSTER)
            now = load.snapshot().by_version()
            since = sum(sum(now.get(v, {}).values()) - sum(before.get(v, {}).values())
                        for v in ("v1", "v2"))  # fmt: skip
            if since < 200:
                return f"{since} answers since the split"
            if not (found["v2"].get("5") and found["v2"].get("2") and found["v1"].get("2")):
                return f"Prometheus has {found}"
            return None

        _poll("the split's traffic in Prometheus", scraped, timeout=40)
        v2, v1 = found["v2"], found["v1"]
        seen = load.snapshot().by_version()

    assert v2.get("5", 0) > 0, v2
    assert v2.get("2", 0) > 0, v2
    assert v1.get("2", 0) > 0, v1
    assert v1.get("5", 0) == 0, v1
    # Users saw both versions in about equal shares after the split, and only v2 failed them.
    v1_seen = sum(seen["v1"].values()) - sum(before.get("v1", {}).values())
    v2_seen = sum(seen["v2"].values()) - sum(before.get("v2", {}).values())
    assert 0.3 <= v1_seen / (v1_seen + v2_seen) <= 0.7
    assert set(seen["v1"]) == {200}
    assert seen["v2"].get(503, 0) > 0
    assert [pid for pid in pids if _alive(pid)] == []


def test_a_failure_half_way_through_start_stops_what_had_started(
    tmp_path: Path, envoy_path: Path, prometheus_path: Path
) -> None:
    # An error rate above 1 makes the app exit at start, after Prometheus is already running.
    local = mesh.LocalMesh(
        service=SERVICE, versions=[mesh.VersionSpec("v1", error_rate=2.0)], workdir=tmp_path
    )
    with pytest.raises(procs.ProcessFailed, match="error rate must be within"), local:
        pass
    pids = local.pids()
    assert pids  # Prometheus and the apps had started
    assert [pid for pid in pids if _alive(pid)] == []
