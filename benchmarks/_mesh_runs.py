"""One rollout by the real controller on a fresh local mesh, and what its users saw.

The world is wired as `canary demo` wires it (canary/demo/run.py, canary/demo/controller.py),
without the live view: a LocalMesh with the demo's two versions behind the load generator, a
LocalStore seeded with the given objects, and the Reconciler and Controller that run in a
cluster, reading the mesh's Prometheus through the Envoy query set. The run ends when the
Canary's phase is terminal or the time limit passes; the load keeps going for a short tail after
that, so a version still served after the rollout ended would show.

The load generator counts answers per whole second since its start. Status times and events are
wall-clock times, so the run also records the wall-clock moment of the load generator's second
0, and `load_second` puts both on the one clock.

A benchmark that must look at the data plane while the rollout runs (an Envoy's admin stats)
passes `watch`: a context manager made from the mesh and the store, open from the mesh's start
until the controller has stopped.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from canary.adapters.prometheus import PrometheusMetrics
from canary.api.status import TERMINAL_PHASES, CanaryStatus
from canary.controller import logs
from canary.demo import controller as demo_controller
from canary.demo import scenario
from canary.localmesh import loadgen
from canary.localmesh.mesh import LocalMesh, VersionSpec
from canary.localmesh.store import LocalStore

# Load after the terminal phase: a version still answering then would be counted.
TAIL_S = 2.0
POLL_S = 0.2

Watch = Callable[[LocalMesh, LocalStore], contextlib.AbstractContextManager[object]]


@dataclass(frozen=True, slots=True)
class Load:
    """The demo's load and versions: the defaults of `canary demo`.

    Each version answers after `latency_ms`; the canary after `canary_latency_ms` instead when
    set, give or take `canary_jitter_ms` (uniform). Each fails its own share of requests.
    """

    rate: float = 40.0
    latency_ms: float = 5.0
    canary_error_rate: float = 0.0
    stable_error_rate: float = 0.0
    canary_latency_ms: float | None = None
    canary_jitter_ms: float = 0.0
    timeout_s: float = 180.0


@dataclass(frozen=True, slots=True)
class Rollout:
    status: CanaryStatus
    events: list[dict[str, Any]]
    snapshot: loadgen.Snapshot
    # The wall-clock moment of the load generator's second 0.
    load_started: datetime
    mesh_start_s: float
    # From the controller's start to the terminal phase (or the time limit).
    rollout_s: float
    timed_out: bool
    log: Path

    @property
    def phase(self) -> str:
        return str(self.status.phase or "Pending")

    def load_second(self, moment: datetime) -> float:
        """A wall-clock moment on the load generator's clock, in seconds since its start."""
        return (moment - self.load_started).total_seconds()


def run(
    objects: Sequence[dict[str, Any]],
    load: Load,
    *,
    log_path: Path,
    log_level: str = "info",
    watch: Watch | None = None,
) -> Rollout:
    """Runs the objects' Canary to a terminal phase, with the controller's log in `log_path`."""
    plan = scenario.plan(list(objects))
    versions = [
        VersionSpec(
            name=plan.stable_version,
            error_rate=load.stable_error_rate,
            latency_ms=load.latency_ms,
        ),
        VersionSpec(
            name=plan.canary_version,
            error_rate=load.canary_error_rate,
            latency_ms=load.latency_ms
            if load.canary_latency_ms is None
            else load.canary_latency_ms,
            latency_jitter_ms=load.canary_jitter_ms,
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as scratch:
        store = LocalStore(Path(scratch) / "state")
        for body in objects:
            store.put(body)
        begun = time.monotonic()
        with (
            LocalMesh(
                service=plan.service,
                namespace=plan.key.namespace,
                versions=versions,
                workdir=Path(scratch) / "mesh",
                rate=load.rate,
                duration=load.timeout_s + 30,
            ) as mesh,
            log_path.open("w", encoding="utf-8") as log_file,
            watch(mesh, store) if watch is not None else contextlib.nullcontext(),
        ):
            mesh_start_s = time.monotonic() - begun
            assert mesh.load is not None, "the mesh runs a load generator when rate > 0"
            load_started = datetime.now(UTC) - timedelta(seconds=mesh.load.snapshot().elapsed_s)
            logs.configure(json=False, level=log_level, stream=log_file)
            controller = demo_controller.local_controller(
                store, mesh, PrometheusMetrics(mesh.prometheus_url)
            )
            started = time.monotonic()
            controller.start()
            try:
                timed_out = not _wait_terminal(store, plan, limit_s=load.timeout_s)
                rollout_s = time.monotonic() - started
                time.sleep(TAIL_S)
                snapshot = mesh.load.snapshot()
            finally:
                controller.stop()
        return Rollout(
            status=store.status(plan.key),
            events=store.events(),
            snapshot=snapshot,
            load_started=load_started,
            mesh_start_s=mesh_start_s,
            rollout_s=rollout_s,
            timed_out=timed_out,
            log=log_path,
        )


def _wait_terminal(store: LocalStore, plan: scenario.Plan, *, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if store.status(plan.key).phase in TERMINAL_PHASES:
            return True
        time.sleep(POLL_S)
    return False
