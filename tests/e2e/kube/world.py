"""What the tests of the controller's world under faults share: evidence read from outside the
product, and the faults themselves.

- `StatusLog` polls the Canary from the API server in a thread of its own, so a test can kill
  and restart things meanwhile; it keeps every state seen with the time it was seen, and every
  check record ever in `status.history` (which keeps only the last 50).
- `Splits` records each split of the managed route from the API server's watch with the time it
  arrived: what the controller wrote, in order, whoever it was.
- `FaultFeed` serves the EnvoyFilters canary writes on the local mesh's inbound Envoys, as istiod
  programs sidecars from them, so an experiment's 503s are real answers the load generator counts.
- `restart_prometheus` stops the mesh's Prometheus and starts it on the same port and data dir.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from canary.adapters.kube import faults
from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import CANARY, ENVOY_FILTER, VIRTUAL_SERVICE, Kind, Rest, connect
from canary.errors import CanaryError
from canary.localmesh import procs
from canary.localmesh.mesh import LocalMesh
from canary.localmesh.prometheus import PrometheusHandle
from tests.e2e.kube import harness
from tests.e2e.kube.meshfeed import MeshFeed, first_route_split
from tests.kubeenv.cluster import KubeCluster

log = structlog.get_logger("tests.world")

Json = dict[str, Any]


@dataclass
class StatusLog:
    """Every status of one Canary the API server answered, polled every `every` seconds."""

    kube: KubeCluster
    namespace: str
    name: str = harness.SERVICE
    every: float = 0.25
    samples: list[tuple[float, Json]] = field(default_factory=list)
    # Every check record seen in status.history, by (name, step, at): nothing lost to the bound.
    records: dict[tuple[str, int, str], Json] = field(default_factory=dict)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> StatusLog:
        # A client of its own: the test's thread uses harness.admin_rest at the same time.
        rest = Rest(connect(str(self.kube.admin_kubeconfig)))
        self._thread = threading.Thread(target=self._run, args=(rest,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def latest(self) -> Json:
        with self._lock:
            return self.samples[-1][1] if self.samples else {}

    def between(self, start: float, end: float) -> list[Json]:
        with self._lock:
            return [status for at, status in self.samples if start <= at <= end]

    def wait(
        self,
        what: str,
        until: Any,
        *,
        timeout: float,
        controller: harness.ControllerProcess | None = None,
    ) -> Json:
        """Until `until(status)` holds for the newest sample; bounded by `timeout`. A timeout
        says the last status and, given the controller, the end of its log."""
        found: Json = {}

        def check() -> str | None:
            found.clear()
            found.update(self.latest())
            return None if until(found) else "not yet"

        try:
            harness.wait_for(what, check, timeout=timeout, every=0.1)
        except AssertionError as exc:
            tail = f"\ncontroller log:\n{controller.log_tail(40)}" if controller else ""
            raise AssertionError(f"{exc}; last status: {json.dumps(found)[:3000]}{tail}") from None
        return found

    def step_clocks(self) -> dict[int, set[str]]:
        """For each step, every stepStartedAt the status showed while Progressing there."""
        clocks: dict[int, set[str]] = {}
        with self._lock:
            for _, status in self.samples:
                started = status.get("stepStartedAt")
                if status.get("phase") == "Progressing" and started:
                    clocks.setdefault(int(status.get("step") or 0), set()).add(str(started))
        return clocks

    def _run(self, rest: Rest) -> None:
        path = CANARY.path(self.namespace, self.name)
        while not self._stop.wait(self.every):
            try:
                body = rest.get(path)
            except (CanaryError, OSError):
                # The API server may be the thing a test restarts: a gap, counted.
                self.failures += 1
                continue
            status: Json = body.get("status") or {}
            with self._lock:
                self.samples.append((time.monotonic(), status))
                for record in status.get("history") or []:
                    key = (str(record.get("name")), int(record.get("step") or 0), record["at"])
                    self.records[key] = record


@dataclass
class Splits:
    """Each split of the managed route the API server's watch delivered, with its arrival."""

    namespace: str
    seen: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    _cache: ClusterCache | None = None

    def attach(self, feed: MeshFeed) -> Splits:
        """Listens on the mesh feed's own watch: the splits the Envoys were fed, in order."""
        self._cache = feed.cache
        feed.cache.on_change(self._changed)
        self._changed(VIRTUAL_SERVICE, (self.namespace, harness.SERVICE))
        return self

    def _changed(self, kind: Kind, key: tuple[str, str]) -> None:
        if kind != VIRTUAL_SERVICE or key != (self.namespace, harness.SERVICE):
            return
        assert self._cache is not None
        body = self._cache.of(kind).get(*key)
        if body is None:
            return
        split = first_route_split(body)
        if not self.seen or self.seen[-1][1] != split:
            self.seen.append((time.monotonic(), split))

    def canary_weights(self, canary: str = "v2") -> list[int]:
        weights: list[int] = []
        for _, split in self.seen:
            if not weights or weights[-1] != split.get(canary, 0):
                weights.append(split.get(canary, 0))
        return weights

    def first_with(self, subset: str) -> float | None:
        """When the watch first delivered a split giving `subset` a weight."""
        return next((at for at, split in self.seen if split.get(subset, 0) > 0), None)

    def changes_between(self, start: float, end: float) -> list[dict[str, int]]:
        return [split for at, split in self.seen if start < at <= end]


class FaultFeed:
    """canary's EnvoyFilters in one namespace, served by the mesh's inbound Envoys."""

    def __init__(self, rest: Rest, mesh: LocalMesh, namespace: str) -> None:
        self.mesh = mesh
        self.namespace = namespace
        self.cache = ClusterCache(rest, kinds=(ENVOY_FILTER,))
        self.cache.on_change(self._changed)
        # (arrival, experiments in force) on every change; the last says what is served now.
        self.served: list[tuple[float, tuple[str, ...]]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> FaultFeed:
        self.cache.start()
        if not self.cache.wait_synced(30):
            raise RuntimeError(f"fault feed: caches not synced: {self.cache.unsynced()}")
        self._changed(ENVOY_FILTER, (self.namespace, ""))
        return self

    def stop(self) -> None:
        self.cache.stop()

    def filters(self) -> list[Json]:
        return [
            body
            for body in self.cache.of(ENVOY_FILTER).items()
            if (body.get("metadata") or {}).get("namespace") == self.namespace
        ]

    def _changed(self, kind: Kind, key: tuple[str, str]) -> None:
        if key[0] != self.namespace:
            return
        try:
            planned = [_planned(body) for body in self.filters()]
            with self._lock:
                self.mesh.set_faults(planned)
                experiments = tuple(
                    sorted(
                        str(
                            ((b.get("metadata") or {}).get("annotations") or {}).get(
                                faults.EXPERIMENT_ANNOTATION
                            )
                        )
                        for b in self.filters()
                    )
                )
                self.served.append((time.monotonic(), experiments))
        except Exception as exc:  # a listener must never raise; the test asserts on errors
            self.errors.append(repr(exc))
            log.exception("faultfeed.failed")


def _planned(body: Json) -> tuple[str, dict[str, str], Json, int | None]:
    """What the mesh serves for one EnvoyFilter: (host, workload labels, HTTPFault, pods)."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = body.get("spec") or {}
    patches = spec.get("configPatches") or []
    typed = dict(patches[0]["patch"]["value"]["typed_config"])
    typed.pop("@type", None)
    pods = annotations.get(faults.PODS_ANNOTATION)
    return (
        str(annotations.get(faults.HOST_ANNOTATION) or ""),
        dict((spec.get("workloadSelector") or {}).get("labels") or {}),
        typed,
        len(str(pods).split(",")) if pods else None,
    )


def restart_prometheus(mesh: LocalMesh, *, down_for: float) -> tuple[float, float]:
    """Stops the mesh's Prometheus, waits `down_for` s, starts it with the same argv (port,
    config, TSDB directory); returns (stopped at, ready at) on the monotonic clock."""
    handle = mesh.prometheus
    assert handle is not None
    stopped = stop_prometheus(mesh)
    time.sleep(down_for)
    return stopped, start_prometheus(mesh)


def stop_prometheus(mesh: LocalMesh) -> float:
    handle = mesh.prometheus
    assert handle is not None
    handle.process.stop(grace=10.0)
    assert not handle.process.group_alive()
    return time.monotonic()


def start_prometheus(mesh: LocalMesh) -> float:
    handle = mesh.prometheus
    assert handle is not None
    argv = handle.process.popen.args
    assert isinstance(argv, list), argv
    previous = handle.process.log_path
    with contextlib.suppress(OSError):
        previous.rename(previous.with_suffix(".1.log"))
    process = mesh.supervisor.start("prometheus", argv, cwd=handle.config_path.parent)
    mesh.prometheus = PrometheusHandle(
        process=process, port=handle.port, config_path=handle.config_path
    )
    procs.wait_http(f"{handle.url}/-/ready", timeout=60.0, process=process)
    return time.monotonic()


def envoy_filters(kube: KubeCluster, namespace: str) -> list[Json]:
    code, body = kube.request(
        "GET", f"/apis/networking.istio.io/v1alpha3/namespaces/{namespace}/envoyfilters"
    )
    assert code == 200, body
    items: list[Json] = body.get("items") or []
    return items


def log_lines(controller: harness.ControllerProcess) -> list[Json]:
    """The controller's JSON log lines (every incarnation's: they append to one file)."""
    lines: list[Json] = []
    for text in controller.log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            line = json.loads(text)
            if isinstance(line, dict):
                lines.append(line)
    return lines


def event_count(kube: KubeCluster, namespace: str, reason: str) -> int:
    """How many times an Event with `reason` was recorded (an Event's count folds repeats)."""
    return sum(
        int(event.get("count") or 1)
        for event in harness.events(kube, namespace)
        if event.get("reason") == reason
    )
