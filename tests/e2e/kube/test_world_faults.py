"""The controller's own world failing under it mid-rollout: the API server restarted (etcd kept),
Prometheus stopped and started on the same port and data dir.

Every part is the real one: kube-apiserver and etcd built from Go modules, `canary run` as its
own process, the local mesh's Envoys fed from the API server, a real Prometheus scraping them.
The splits are read from the API server's watch and the verdicts from the status's own check
records, each with the time the test saw it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.e2e.kube import harness, world
from tests.kubeenv.cluster import ClusterError, KubeCluster

STEPS = [10, 25, 50]
METRICS = ("request-success-rate", "request-duration")
# A leader that cannot renew for 2/3 of its lease steps down and exits (canary/cluster/run.py;
# its pod restarts it), and renews every 1/3: with `canary run`'s default of 15 s, an API server
# away for more than 5-10 s ends the process, as it ended a 30 s one here (12 s away, plus the
# time since its last renewal, plus a 403 while the restarted server's RBAC cache filled). This
# test is about one process riding the restart out, so its lease outlasts that: 90 s renews
# every 30 s and steps down after 60 s without a renewal.
LEASE_SECONDS = 90.0


def _terminal(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed", "Invalid")


def _live(weight: int) -> Any:
    def check(status: dict[str, Any]) -> bool:
        return (
            status.get("phase") == "Progressing"
            and status.get("canaryWeight") == weight
            and bool(status.get("stepStartedAt"))
        )

    return check


def _ticks(controller: harness.ControllerProcess, outcome: str) -> float:
    _, text = controller.get("/metrics")
    prefix = f'canary_ticks_total{{outcome="{outcome}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def _controller_allowed(kube: KubeCluster) -> str | None:
    try:
        return None if kube.can_i("list", "canaries.canary.dev") else "not allowed yet"
    except ClusterError as exc:
        return str(exc)


def _when(line: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00"))


def _judged_steps(statuses: world.StatusLog) -> dict[int, set[str]]:
    passed: dict[int, set[str]] = {}
    for (name, step, _), record in statuses.records.items():
        if record.get("passed"):
            passed.setdefault(step, set()).add(name)
    return passed


def test_the_api_server_restarted_mid_step_and_the_controller_carries_on(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    """kube-apiserver is stopped while step 2 (25%) is live and started again on the same port,
    certificates and etcd. The same `canary run` process finishes the rollout: no step
    repeated or skipped, each judged, and its informers list again and see a change someone
    else makes after the restart (a GitOps writer moving the weights: WeightsDrifted)."""
    began = time.monotonic()
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path) as (mesh, feed):
        splits = world.Splits(kube_namespace).attach(feed)
        harness.apply(kube_cluster, harness.objects(kube_namespace, step_seconds=8))
        controller = harness.ControllerProcess(
            kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url,
            lease_seconds=LEASE_SECONDS,
        ).start()  # fmt: skip
        statuses = world.StatusLog(kube_cluster, kube_namespace).start()
        try:
            statuses.wait("step 2 to be live", _live(25), timeout=90, controller=controller)
            assert controller.process is not None
            pid = controller.process.pid
            unavailable_before = _ticks(controller, "unavailable")
            stopped_wall = datetime.now(UTC)
            kube_cluster.stop_apiserver()
            stopped = time.monotonic()
            probes: list[tuple[int, int]] = []
            for _ in range(6):
                probes.append((controller.get("/healthz")[0], controller.get("/readyz")[0]))
                time.sleep(1.0)
            unavailable_during = _ticks(controller, "unavailable") - unavailable_before
            ready_in = kube_cluster.start_apiserver()
            back = time.monotonic()
            # The restarted server is ready before its RBAC cache is filled (the controller's
            # first writes get 403 for a moment): the tests after this one need it whole.
            harness.wait_for(
                "RBAC to let the controller list Canaries again",
                lambda: _controller_allowed(kube_cluster),
                timeout=60,
            )
            rbac_after = time.monotonic() - back
            print(
                f"\napi server down {back - stopped:.1f}s (ready {ready_in:.1f}s after start); "
                f"controller /healthz,/readyz meanwhile: {probes}; "
                f"ticks unavailable meanwhile: {unavailable_during:g}; RBAC whole "
                f"{rbac_after:.1f}s after ready"
            )
            # After the restart, another writer moves the weights of the next live step: only
            # a watch that works again can tell the controller.
            statuses.wait("step 3 to be live", _live(50), timeout=90, controller=controller)
            harness.wait_for(
                "the split of step 3 in the watch",
                lambda: None if splits.canary_weights()[-1:] == [50] else "not yet",
                timeout=30,
            )
            kube_cluster.kubectl(
                "patch", "virtualservices.networking.istio.io", "demo", "-n", kube_namespace,
                "--type=json", "--field-manager=gitops", "--patch", json.dumps([
                    {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100},
                    {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 0},
                ]), check=True,
            )  # fmt: skip
            final = statuses.wait(
                "the rollout to end", _terminal, timeout=150, controller=controller
            )
            still = controller.process.poll() is None and controller.process.pid == pid
        finally:
            statuses.stop()
            controller.stop()
    print(f"api server restart test: {time.monotonic() - began:.0f}s")

    assert still, f"the controller exited while the API server restarted:\n{controller.log_tail()}"
    assert final["phase"] == "Succeeded", (final.get("message"), controller.log_tail())
    assert statuses.failures > 0, "the status poller never saw the API server down"
    # The controller's own liveness stays up (a restart would not help) and it counted the ticks
    # the API server did not answer.
    assert all(health == 200 for health, _ in probes), probes
    assert unavailable_during > 0, unavailable_during
    # Every split the API server's watch delivered: the steps in order, the drift to 100/0 and
    # the controller writing step 3 back, then the promotion. Nothing repeated or skipped.
    assert splits.canary_weights() == [0, 10, 25, 50, 0, 50, 100], splits.seen
    assert feed.refused is None
    drift = [
        e
        for e in harness.events(kube_cluster, kube_namespace)
        if e.get("reason") == "WeightsDrifted"
    ]
    assert drift, "the controller never saw the other writer's change after the restart"
    assert "gitops" in drift[0]["message"], drift[0]["message"]
    # A step's clock starts once, except where the product says it starts over: a drift.
    clocks = world_clocks = statuses.step_clocks()
    assert sorted(clocks) == [0, 1, 2], clocks
    assert len(world_clocks[0]) == 1
    assert len(world_clocks[1]) == 1, f"the restart started step 2's clock again: {clocks[1]}"
    assert len(world_clocks[2]) == 2, clocks[2]
    judged = _judged_steps(statuses)
    assert all(judged.get(step) == set(METRICS) for step in range(len(STEPS))), judged
    assert final.get("failedChecks", 0) == 0, final.get("checks")
    # The informers saw their watches fail, and each listed again once the server was back.
    lines = world.log_lines(controller)
    failed = {
        line["kind"]
        for line in lines
        if line.get("event") == "watch.failed" and _when(line) >= stopped_wall
    }
    relisted = {
        line["kind"]
        for line in lines
        # After the stop, not after `start_apiserver` returned: an informer can list again
        # while the restarted server is still answering its readiness probe.
        if line.get("event") == "list.done" and _when(line) >= stopped_wall
    }
    assert failed, "no informer noticed the API server going away"
    assert failed <= relisted, (failed, relisted)


def _prometheus_canary(namespace: str, *, no_data_timeout: str, threshold: int) -> Any:
    vs, dr, canary = harness.objects(namespace, step_seconds=8, check_seconds=1)
    analysis = canary["spec"]["analysis"]
    analysis["threshold"] = threshold
    for metric in analysis["metrics"]:
        metric["onNoData"] = "wait"
        metric["noDataTimeout"] = no_data_timeout
        metric["interval"] = "5s"
        metric.pop("minRequests", None)
    return [vs, dr, canary]


def _outage(
    kube: KubeCluster, namespace: str, tmp_path: Path, *, no_data_timeout: str, down_for: float
) -> tuple[dict[str, Any], world.StatusLog, world.Splits, float, float]:
    """A rollout whose Prometheus goes away just as step 2 (25%) goes live, and comes back
    `down_for` seconds later on the same port and data dir."""
    with harness.mesh_for(kube, namespace, tmp_path) as (mesh, feed):
        splits = world.Splits(namespace).attach(feed)
        harness.apply(
            kube, _prometheus_canary(namespace, no_data_timeout=no_data_timeout, threshold=1)
        )
        controller = harness.ControllerProcess(
            kube, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        statuses = world.StatusLog(kube, namespace).start()
        try:
            statuses.wait("step 2 to be live", _live(25), timeout=90, controller=controller)
            stopped, back = world.restart_prometheus(mesh, down_for=down_for)
            print(f"\nprometheus down {back - stopped:.1f}s")
            final = statuses.wait(
                "the rollout to end", _terminal, timeout=150, controller=controller
            )
        finally:
            statuses.stop()
            controller.stop()
    return final, statuses, splits, stopped, back


def _outage_records(statuses: world.StatusLog, stopped: float, back: float) -> list[dict[str, Any]]:
    """The latest check records the status showed while Prometheus was down (after the first
    second, so a judgement made just before the stop is not counted)."""
    return [
        record
        for status in statuses.between(stopped + 2.0, back)
        for record in status.get("checks") or []
        if record.get("step") == 1
    ]


def test_prometheus_stopped_mid_step_holds_the_step_and_the_rollout_then_carries_on(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    """onNoData: wait with noDataTimeout 60s, Prometheus down ~10s: while it is down every
    check of the step is an inconclusive error, never a pass, and the step does not move; once
    it is back the checks pass on new scrapes and the rollout is promoted."""
    began = time.monotonic()
    final, statuses, splits, stopped, back = _outage(
        kube_cluster, kube_namespace, tmp_path, no_data_timeout="60s", down_for=10.0
    )
    print(f"prometheus restart test: {time.monotonic() - began:.0f}s")
    during = _outage_records(statuses, stopped, back)
    assert during, "no check was judged while Prometheus was down"
    kinds = {(r["kind"], r["verdict"], r.get("passed")) for r in during}
    assert kinds <= {("error", "inconclusive", None), ("no_data", "inconclusive", None)}, kinds
    assert any(r["kind"] == "error" for r in during), during[:2]
    # The step did not move while the checks could not be read.
    assert splits.changes_between(stopped, back) == [], splits.seen
    assert {s.get("step") for s in statuses.between(stopped, back)} == {1}
    assert final["phase"] == "Succeeded", final.get("message")
    assert splits.canary_weights() == [0, *STEPS, 100], splits.seen
    assert final.get("failedChecks", 0) == 0, final.get("checks")
    judged = _judged_steps(statuses)
    assert all(judged.get(step) == set(METRICS) for step in range(len(STEPS))), judged
    # A pass at step 2 came only from a query made after Prometheus was back.
    assert all(len(clocks) == 1 for clocks in statuses.step_clocks().values())


def test_prometheus_down_past_the_no_data_timeout_rolls_the_canary_back(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    """onNoData: wait with noDataTimeout 10s and threshold 1, Prometheus down ~20s: the checks
    wait 10s into the step, then fail on the query errors (judge.py: `wait` turns into a failure
    once the timeout passed), and the first failure reaches the threshold: rolled back to
    100% stable, never advanced past step 2."""
    began = time.monotonic()
    final, statuses, splits, _, _ = _outage(
        kube_cluster, kube_namespace, tmp_path, no_data_timeout="10s", down_for=20.0
    )
    print(f"prometheus outage rollback test: {time.monotonic() - began:.0f}s")
    assert final["phase"] == "Failed", final.get("message")
    assert splits.canary_weights() == [0, 10, 25, 0], splits.seen
    failed = [
        record
        for record in statuses.records.values()
        if record.get("passed") is False and record.get("step") == 1
    ]
    assert failed, "no check failed at step 2"
    assert {r["kind"] for r in failed} == {"error"}, failed
    assert all("query error" in r["message"] for r in failed), failed
    why = [
        e.get("message", "")
        for e in harness.events(kube_cluster, kube_namespace)
        if "reached the threshold" in e.get("message", "")
    ]
    assert why, [e.get("message") for e in harness.events(kube_cluster, kube_namespace)]
