"""A real inbound Envoy in front of a real app: it forwards, and takes a fault without a restart."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from canary.localmesh import envoy, procs


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_inbound_envoy_forwards_then_aborts_once_a_fault_is_written(
    tmp_path: Path, envoy_path: Path
) -> None:
    with procs.Supervisor(tmp_path / "logs") as supervisor:
        app_port, listen_port, admin_port = (procs.free_port() for _ in range(3))
        argv = [sys.executable, "-m", "canary.localmesh.app", f"--port={app_port}"]
        app = supervisor.start("app", [*argv, "--version=v1"])
        procs.wait_http(f"http://127.0.0.1:{app_port}/healthz", timeout=15, process=app)
        workdir = tmp_path / "inbound"
        bootstrap = envoy.inbound_bootstrap(
            listen_port=listen_port,
            admin_port=admin_port,
            app_port=app_port,
            name="demo-v1-0",
            workdir=workdir,
        )
        proxy = envoy.start_envoy(
            supervisor, bootstrap, name="inbound", admin_port=admin_port, workdir=workdir
        )
        url = f"http://127.0.0.1:{listen_port}/"
        assert _get(url) == (200, b'{"version": "v1"}')

        abort = {"abort": {"http_status": 418, "percentage": {"numerator": 100}}}
        envoy.write_xds(
            workdir / envoy.ROUTE_FILE,
            [envoy.inbound_route_config(app_cluster="app_demo-v1-0", fault=abort)],
            version=2,
        )
        deadline = time.monotonic() + 5
        while (answer := _get(url))[0] != 418 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answer == (418, b"fault filter abort")
        assert proxy.process.alive()
        stats = _get(f"{proxy.admin_url}/stats?filter=fault.aborts_injected")[1].decode()
        assert "http.inbound.fault.aborts_injected: " in stats
        assert "aborts_injected: 0" not in stats
