"""What the end-to-end rollout tests share: the controller as a process, the mesh fed from the
API server, and bounded waits on a Canary's status.

The controller runs as `canary run` in a process of its own, under the controller identity that
deploy/rbac.yaml binds, so a missing verb fails a test and a kill is a real kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from canary.adapters.kube.rest import CANARY, DESTINATION_RULE, VIRTUAL_SERVICE, Rest, connect
from canary.demo import scenario
from canary.localmesh import procs
from canary.localmesh.mesh import LocalMesh, VersionSpec
from tests.e2e.kube.meshfeed import MeshFeed, first_route_split
from tests.kubeenv.cluster import KubeCluster

CANARY_BIN = Path(sys.executable).with_name("canary")
SERVICE = scenario.SERVICE


def free_port() -> int:
    return procs.free_port()


@dataclass
class ControllerProcess:
    """`canary run` against the test API server, as the controller identity."""

    kube: KubeCluster
    workdir: Path
    prometheus_url: str
    envoy_admin: str | None = None
    identity: str = "canary-a"
    lease_namespace: str = "canary-system"
    lease_seconds: float = 6.0
    leader_election: bool = True
    # Off for the tests that run without a Prometheus on purpose: preflight would hold their
    # first step on the metric series it cannot ask about.
    preflight: bool = True
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"controller-{self.identity}.log"

    def start(self) -> ControllerProcess:
        argv = [
            str(CANARY_BIN), "run",
            "--kubeconfig", str(self.kube.controller_kubeconfig),
            "--prometheus-url", self.prometheus_url,
            "--query-set", "envoy",
            "--metrics-address", f"127.0.0.1:{self.port}",
            "--lease-namespace", self.lease_namespace,
            "--lease-seconds", str(self.lease_seconds),
            "--identity", self.identity,
            "--log-format", "json",
            "--log-level", "debug",
        ]  # fmt: skip
        if self.envoy_admin:
            argv += ["--envoy-admin", self.envoy_admin]
        if not self.leader_election:
            argv.append("--no-leader-election")
        if not self.preflight:
            argv.append("--no-preflight")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for(f"{self.identity} /readyz", self._ready, timeout=60)
        except BaseException:
            # The test never gets the object to stop: a process that did not come up is
            # stopped here, or it would outlive the run (it retries its API server for good).
            self.stop()
            raise
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a node loss would: no clean-up, no Lease release."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def leading(self) -> bool:
        """Whether this replica holds the Lease, by its own /metrics."""
        try:
            _, text = self.get("/metrics")
        except OSError:
            return False
        return any(line.strip() == "canary_leader 1.0" for line in text.splitlines())

    def ticks(self) -> int:
        """The ticks this process has run, from its own /metrics."""
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith("canary_ticks_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no controller log)"

    def _ready(self) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"canary run exited:\n{self.log_tail()}")
        try:
            status, text = self.get("/readyz")
        except OSError as exc:
            return str(exc)
        return None if status == 200 else text


def wait_for(
    what: str, check: Callable[[], str | None], *, timeout: float, every: float = 0.2
) -> None:
    """Polls `check` (None means done, else why not) until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    why: str | None = "not checked"
    while time.monotonic() < deadline:
        why = check()
        if why is None:
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}: {why}")


def objects(
    namespace: str, *, step_seconds: int = 6, check_seconds: int = 1
) -> list[dict[str, Any]]:
    """The demo's VirtualService, DestinationRule and Canary, in `namespace`."""
    bodies = [
        scenario.virtual_service(),
        scenario.destination_rule(),
        scenario.canary(step_seconds=step_seconds, check_seconds=check_seconds),
    ]
    for body in bodies:
        body["metadata"]["namespace"] = namespace
    return bodies


def apply(
    kube: KubeCluster, bodies: list[dict[str, Any]], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply -f -` of the objects as YAML, as a user would."""
    text = yaml.safe_dump_all(bodies, sort_keys=False)
    return kube.kubectl("apply", "-f", "-", input=text, check=check)


_KINDS = {
    kind.plural + "." + kind.group: kind for kind in (VIRTUAL_SERVICE, DESTINATION_RULE, CANARY)
}


def get(kube: KubeCluster, kind: str, namespace: str, name: str) -> dict[str, Any]:
    """The object as the API server holds it, managedFields included (kubectl hides them)."""
    return admin_rest(kube).get(_KINDS[kind].path(namespace, name))


_RESTS: dict[Path, Rest] = {}


def admin_rest(kube: KubeCluster) -> Rest:
    rest = _RESTS.get(kube.admin_kubeconfig)
    if rest is None:
        rest = _RESTS[kube.admin_kubeconfig] = Rest(connect(str(kube.admin_kubeconfig)))
    return rest


def canary(kube: KubeCluster, namespace: str, name: str = SERVICE) -> dict[str, Any]:
    return admin_rest(kube).get(CANARY.path(namespace, name))


def status(kube: KubeCluster, namespace: str, name: str = SERVICE) -> dict[str, Any]:
    found: dict[str, Any] = canary(kube, namespace, name).get("status") or {}
    return found


def events(kube: KubeCluster, namespace: str) -> list[dict[str, Any]]:
    result = kube.kubectl("get", "events", "-n", namespace, "-o", "json", check=True)
    items: list[dict[str, Any]] = json.loads(result.stdout).get("items") or []
    return items


def route_weights(body: dict[str, Any]) -> dict[str, int]:
    return first_route_split(body)


@contextlib.contextmanager
def mesh_for(
    kube: KubeCluster,
    namespace: str,
    workdir: Path,
    *,
    canary_error_rate: float = 0.0,
    rate: float = 40.0,
) -> Iterator[tuple[LocalMesh, MeshFeed]]:
    """The local mesh for the demo service in `namespace`, its Pilot fed from the API server."""
    mesh = LocalMesh(
        service=SERVICE,
        versions=[VersionSpec("v1"), VersionSpec("v2", error_rate=canary_error_rate)],
        namespace=namespace,
        workdir=workdir / "mesh",
        rate=rate,
    )
    with mesh:
        feed = MeshFeed(admin_rest(kube), mesh, namespace).start()
        try:
            yield mesh, feed
        finally:
            feed.stop()


@dataclass
class Trace:
    """Every (phase, weight, step) a Canary's status showed, in order, deduplicated."""

    seen: list[tuple[str, int, int]] = field(default_factory=list)

    def record(self, current: dict[str, Any]) -> None:
        sample = (
            str(current.get("phase") or ""),
            int(current.get("canaryWeight") or 0),
            int(current.get("step") or 0),
        )
        if not self.seen or self.seen[-1] != sample:
            self.seen.append(sample)

    @property
    def weights(self) -> list[int]:
        out: list[int] = []
        for _, weight, _ in self.seen:
            if not out or out[-1] != weight:
                out.append(weight)
        return out


def follow(
    kube: KubeCluster,
    namespace: str,
    until: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
    trace: Trace | None = None,
    controller: ControllerProcess | None = None,
) -> dict[str, Any]:
    """Polls the Canary's status until `until` holds; records every state on the way."""
    deadline = time.monotonic() + timeout
    current: dict[str, Any] = {}
    while time.monotonic() < deadline:
        current = status(kube, namespace)
        if trace is not None:
            trace.record(current)
        if until(current):
            return current
        time.sleep(0.3)
    extra = f"\ncontroller log:\n{controller.log_tail()}" if controller else ""
    raise AssertionError(
        f"timed out after {timeout:g}s; last status: {json.dumps(current)[:2000]}{extra}"
    )
