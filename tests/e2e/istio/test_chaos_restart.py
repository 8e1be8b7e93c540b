"""A fault outlives a killed controller, and the restarted one removes it before its first tick.

Given the service of test_chaos.py (each version behind a sidecar Envoy istiod programs, a
gateway routing by weight) and a Canary whose one step ends with a 100% abort experiment, when
`canary run` has started the experiment (status first, then the EnvoyFilter that istiod turns
into a fault filter on the canary's sidecar) and is SIGKILLed, then the fault stays in force,
past its expiry too, since nothing but a controller removes it; and a restarted `canary run`
deletes the expired EnvoyFilter as it starts leading, before its first tick, istiod takes the
filter off the sidecar, and the canary answers again. The rollout then finishes from the status
the dead controller left: the experiment is ended and judged, and onFailure acts on the verdict.

The controller gets no Prometheus, so the verdict cannot be read and the experiment fails
saying so; with `onFailure: rollback` the rollout ends Failed at 100/0. This test is about the
fault's life across a crash; test_controller.py covers verdicts read from the Envoys' metrics.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from canary.adapters.envoy_admin import EnvoyPropagation
from canary.adapters.kube import faults
from canary.adapters.kube.rest import FAULT_HOST_LABEL, FIELD_MANAGER, MANAGED_BY_LABEL
from tests.e2e.istio import sidecars
from tests.e2e.istio.conftest import GatewayUnderTest, assert_no_nacks
from tests.e2e.kube import harness
from tests.istiod import run
from tests.kubeenv.cluster import KubeCluster

Json = dict[str, Any]

INTERVAL = 10
# The fault's life; the spec requires it to fit in the step.
DURATION = 8
EXPERIMENT = "abort-v2"
ROUTE = "primary"
# How soon after leading the new controller must have removed the fault: it is the first thing
# it does, before any tick, so this is an API round trip plus a slow machine's margin.
SWEPT_WITHIN = 3.0
CLEAR_TIMEOUT = 60.0


def _objects(namespace: str) -> list[Json]:
    return sidecars.gateway_routing(namespace, ROUTE)


def _canary(namespace: str) -> Json:
    return sidecars.abort_canary(
        namespace,
        route=ROUTE,
        experiment=EXPERIMENT,
        interval=f"{INTERVAL}s",
        check_interval="2s",
        duration=f"{DURATION}s",
    )


def _controller(
    kube: KubeCluster, gateway: GatewayUnderTest, workdir: Path
) -> harness.ControllerProcess:
    # One identity for both runs: the kubelet restarts a killed container in the same pod, under
    # the same name, and it takes its own Lease back at once. The Lease lives in the test's
    # namespace so no other test's leader is in the way.
    return harness.ControllerProcess(
        kube,
        workdir,
        sidecars.NO_PROMETHEUS,
        envoy_admin=gateway.proxy.admin_url,
        lease_namespace=gateway.namespace,
        # No Prometheus on purpose: the verdict must say so, not preflight.
        preflight=False,
    )


def _envoy_filter(kube: KubeCluster, namespace: str) -> Json | None:
    return sidecars.fault_filter(kube, namespace)


def _absent(kube: KubeCluster, namespace: str) -> str | None:
    if _envoy_filter(kube, namespace) is not None:
        return None
    current = harness.status(kube, namespace)
    return f"absent; the Canary is {current.get('phase')}: {current.get('message')}"


def _experiment(kube: KubeCluster, namespace: str) -> Json:
    entries = harness.status(kube, namespace).get("chaos") or []
    assert [entry.get("name") for entry in entries] == [EXPERIMENT], entries
    found: Json = entries[0]
    return found


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _still_faulting(kube: KubeCluster, namespace: str, canary: sidecars.Version) -> None:
    """The fault is whole: the object in the API server, the filter on the sidecar, the 503."""
    assert _envoy_filter(kube, namespace) is not None
    assert [sidecars.as_written(c) for c in sidecars.fault_filters(canary.proxy)] == [
        {"abort": sidecars.ABORT_ALL}
    ]
    assert canary.get()[:2] == (503, "fault filter abort")


@dataclass
class Cleared:
    """When each trace of the fault was first seen gone (wall clock, as the controller logs)."""

    envoy_filter: datetime | None = None
    sidecar_config: datetime | None = None
    sidecar_answer: datetime | None = None

    def complete(self) -> bool:
        return None not in (self.envoy_filter, self.sidecar_config, self.sidecar_answer)

    def moments(self) -> tuple[datetime, datetime, datetime]:
        gone, clean, answered = self.envoy_filter, self.sidecar_config, self.sidecar_answer
        assert gone is not None, self
        assert clean is not None, self
        assert answered is not None, self
        return gone, clean, answered


def _watch_clearing(
    kube: KubeCluster, namespace: str, canary: sidecars.Version, stop: threading.Event
) -> Cleared:
    """Polls from before the new controller starts, so the moments do not depend on when its
    start-up returned; an answer of 200 counts once, a fault of 100% never gives one."""
    cleared = Cleared()
    deadline = time.monotonic() + CLEAR_TIMEOUT
    while not cleared.complete() and not stop.is_set() and time.monotonic() < deadline:
        if cleared.envoy_filter is None and _envoy_filter(kube, namespace) is None:
            cleared.envoy_filter = datetime.now(UTC)
        if cleared.sidecar_config is None and not sidecars.fault_filters(canary.proxy):
            cleared.sidecar_config = datetime.now(UTC)
        if cleared.sidecar_answer is None and canary.get()[0] == 200:
            cleared.sidecar_answer = datetime.now(UTC)
        time.sleep(0.02)
    return cleared


def _check_injected(kube: KubeCluster, namespace: str) -> datetime:
    """The EnvoyFilter is canary's, for this host, and expires when the status says the
    experiment does (the status was written first); that expiry."""
    written = _envoy_filter(kube, namespace)
    assert written is not None
    labels, annotations = written["metadata"]["labels"], written["metadata"]["annotations"]
    assert labels[MANAGED_BY_LABEL] == FIELD_MANAGER, labels
    fqdn = sidecars.fqdn_of(namespace)
    # A host too long for a label value is shortened there; the annotation keeps it whole.
    assert labels[FAULT_HOST_LABEL] == faults.label_value(fqdn), labels
    assert annotations[faults.HOST_ANNOTATION] == fqdn, annotations
    running = _experiment(kube, namespace)
    assert running["phase"] == "Running", running
    assert running.get("endedAt") is None, running
    expires_at = _moment(running["expiresAt"])
    assert expires_at - _moment(running["startedAt"]) == timedelta(seconds=DURATION)
    assert _moment(annotations[faults.EXPIRES_ANNOTATION]) == expires_at, (annotations, running)
    return expires_at


def _restart_watching(
    controller: harness.ControllerProcess,
    kube: KubeCluster,
    namespace: str,
    canary: sidecars.Version,
) -> Cleared:
    """Starts `controller` while watching the fault go, from just before it starts."""
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        watching = pool.submit(_watch_clearing, kube, namespace, canary, stop)
        try:
            controller.start()
        except BaseException:
            stop.set()
            raise
        return watching.result(timeout=CLEAR_TIMEOUT + 10)


def _answers_through(gateway: GatewayUnderTest, fqdn: str, count: int) -> dict[str, int]:
    """Which version answered each of `count` requests through the gateway (else the status)."""
    answered: dict[str, int] = {}
    for _ in range(count):
        status, body = gateway.get("/", host=fqdn)
        try:
            version = json.loads(body)["version"] if status == 200 else f"http-{status}"
        except (ValueError, KeyError, TypeError):
            version = f"http-{status} {body[:40]}"
        answered[version] = answered.get(version, 0) + 1
    return answered


def _events(controller: harness.ControllerProcess) -> list[Json]:
    """The controller's JSON log lines, in order (a line that is not JSON is left out)."""
    found = []
    for line in controller.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "event" in entry and "timestamp" in entry:
            found.append(entry)
    return found


def _first(events: list[Json], name: str) -> tuple[int, datetime]:
    """The position and time of the first line of event `name` (a prefix ending in '.' matches
    any event of that family)."""
    for index, entry in enumerate(events):
        event = str(entry["event"])
        if event == name or (name.endswith(".") and event.startswith(name)):
            return index, _moment(str(entry["timestamp"]))
    raise AssertionError(f"no {name} in the controller's log: {[e['event'] for e in events]}")


def test_a_fault_outlives_a_killed_controller_and_the_restarted_one_removes_it(
    kube_cluster: KubeCluster,
    istiod: run.Istiod,
    backends: list[run.Backend],
    gateway: GatewayUnderTest,
    tmp_path: Path,
) -> None:
    namespace = gateway.namespace
    routing = _objects(namespace)
    with sidecars.versions(
        kube_cluster, istiod, backends, namespace, tmp_path / "mesh", objects=routing
    ) as versions:
        canary, stable = versions["v2"], versions["v1"]
        assert canary.get()[:2] == (200, '{"version": "v2"}')
        harness.apply(kube_cluster, [_canary(namespace)])
        first = _controller(kube_cluster, gateway, tmp_path / "first").start()
        second = _controller(kube_cluster, gateway, tmp_path / "second")
        try:
            # The experiment starts at the end of the 50% step.
            harness.wait_for(
                f"EnvoyFilter {sidecars.FAULT_FILTER}",
                lambda: _absent(kube_cluster, namespace),
                timeout=INTERVAL + 30,
            )
            served_in = sidecars.wait_fault(canary.proxy, {"abort": sidecars.ABORT_ALL})
            assert canary.get()[:2] == (503, "fault filter abort")
            assert stable.get()[:2] == (200, '{"version": "v1"}')
            for other in (stable.proxy, gateway.proxy):
                assert faults.FILTER_NAME not in json.dumps(other.config_dump()), other.node_id
            expires_at = _check_injected(kube_cluster, namespace)

            first.kill()
            killed_at = datetime.now(UTC)
            assert killed_at < expires_at, "killed too late to show the fault outliving it"
            _still_faulting(kube_cluster, namespace, canary)

            # Past the expiry, with no controller: nothing else removes the fault. A fixed wait
            # on purpose: it is the time that must pass with nothing happening, not a poll.
            wait = (expires_at - datetime.now(UTC)).total_seconds() + 1.0
            assert wait <= DURATION + 1.0, wait
            time.sleep(max(0.0, wait))
            _still_faulting(kube_cluster, namespace, canary)
            stale = _experiment(kube_cluster, namespace)
            assert (stale["phase"], stale.get("endedAt")) == ("Running", None), stale

            restarted_at = datetime.now(UTC)
            cleared = _restart_watching(second, kube_cluster, namespace, canary)
            assert cleared.complete(), (cleared, second.log_tail())
            final = harness.follow(
                kube_cluster,
                namespace,
                lambda c: c.get("phase") in ("Succeeded", "Failed"),
                timeout=60,
                controller=second,
            )
        finally:
            first.stop()
            second.stop()

        gone, clean, answered = cleared.moments()
        events = _events(second)
        leading, led_at = _first(events, "run.leading")
        swept, swept_at = _first(events, "fault.expired_cleared")
        started, _ = _first(events, "controller.started")
        ticked, ticked_at = _first(events, "tick.")
        # The sweep is the new leader's first act: before its scheduler, so before any tick.
        assert leading < swept < started < ticked, [e["event"] for e in events]
        assert events[swept]["fault"] == f"{namespace}/{sidecars.FAULT_FILTER}", events[swept]
        gone_after = (gone - led_at).total_seconds()
        assert 0 <= gone_after <= SWEPT_WITHIN, (led_at, cleared)

        # The rollout went on from the dead controller's status: the experiment was ended by the
        # new one (its fault already gone), judged, and failed for want of any metrics.
        ended = final["chaos"][0]
        assert (ended["name"], ended["phase"]) == (EXPERIMENT, "Failed"), ended
        ended_at, judged_at = _moment(ended["endedAt"]), _moment(ended["judgedAt"])
        assert expires_at <= led_at <= ended_at <= judged_at, ended
        assert f"Prometheus at {sidecars.NO_PROMETHEUS} unreachable" in ended["message"], ended
        assert final["phase"] == "Failed", (final, second.log_tail())
        assert final["canaryWeight"] == 0, final
        body = harness.get(
            kube_cluster, "virtualservices.networking.istio.io", namespace, sidecars.SERVICE
        )
        assert harness.route_weights(body) == {"v1": 100, "v2": 0}, body["spec"]
        # What decides: users through the gateway get v1 only (the product's own reading of the
        # gateway's config, a secondary check, agrees).
        through_gateway = _answers_through(gateway, sidecars.fqdn_of(namespace), 40)
        assert through_gateway == {"v1": 40}, through_gateway
        propagation = EnvoyPropagation([gateway.proxy.admin_url])
        assert propagation.serves(namespace, sidecars.fqdn_of(namespace), ROUTE, {"v1": 100})
        # Nothing put the fault back on the way.
        assert _envoy_filter(kube_cluster, namespace) is None
        assert sidecars.fault_filters(canary.proxy) == []
        assert canary.get()[:2] == (200, '{"version": "v2"}')
        # Adding and removing the filter never made a proxy refuse its config.
        for proxy in (canary.proxy, stable.proxy, gateway.proxy):
            assert_no_nacks(istiod, proxy)

    def since(moment: datetime, origin: datetime) -> str:
        return f"{(moment - origin).total_seconds():+.3f} s"

    print(
        f"\nfault served by the canary's sidecar {served_in:.3f} s after its EnvoyFilter was "
        f"seen; controller killed {since(killed_at, expires_at)} from expiry; restarted "
        f"{since(restarted_at, expires_at)} from expiry.\nFrom the new controller leading: "
        f"swept {since(swept_at, led_at)} (log), EnvoyFilter seen gone "
        f"{since(gone, led_at)}, sidecar config clean {since(clean, led_at)}, canary answers "
        f"200 {since(answered, led_at)}, first tick done {since(ticked_at, led_at)}"
    )
