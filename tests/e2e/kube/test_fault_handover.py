"""A leader that stops takes its faults off; the next one puts a still-running one back.

Given `canary run` on a real API server with a Canary whose experiment is running (its
EnvoyFilter in place), when the controller is stopped (SIGTERM, as a rolling update or a scale
to zero does), then the EnvoyFilter is gone before the process exits: nobody else would remove
it while no controller runs. When a controller starts again while the experiment's window is
still open, it injects the fault again at its first tick (faults are level-triggered), with the
same expiry, and the experiment goes on to its verdict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from canary.adapters.kube import faults
from canary.adapters.kube.rest import ENVOY_FILTER
from tests.e2e.kube import harness
from tests.kubeenv.cluster import KubeCluster

STEP_SECONDS = 20
FILTER = f"{faults.NAME_PREFIX}{harness.SERVICE}"
EXPERIMENT = {
    "name": "abort-v2",
    "atWeight": 10,
    "duration": "18s",
    "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
    "onFailure": "continue",
}


def _envoy_filter(kube: KubeCluster, namespace: str) -> dict[str, Any] | None:
    return harness.admin_rest(kube).get_or_none(ENVOY_FILTER.path(namespace, FILTER))


def test_a_stopping_leader_clears_its_fault_and_the_next_one_injects_it_again(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    vs, dr, canary = harness.objects(kube_namespace, step_seconds=STEP_SECONDS)
    canary["spec"]["chaos"] = [EXPERIMENT]
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path) as (mesh, _):
        harness.apply(kube_cluster, [vs, dr, canary])
        first = harness.ControllerProcess(
            kube_cluster, tmp_path / "first", mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        second = harness.ControllerProcess(
            kube_cluster, tmp_path / "second", mesh.prometheus_url, envoy_admin=mesh.admin_url
        )
        try:
            harness.wait_for(
                f"EnvoyFilter {FILTER}",
                lambda: None if _envoy_filter(kube_cluster, kube_namespace) else "absent",
                timeout=STEP_SECONDS + 60,
            )
            injected = _envoy_filter(kube_cluster, kube_namespace)
            assert injected is not None
            expires = injected["metadata"]["annotations"][faults.EXPIRES_ANNOTATION]
            first.stop()
            assert first.process is not None
            assert first.process.returncode is not None
            # Gone by the time the process has exited: cleared before the Lease was released.
            after_stop = _envoy_filter(kube_cluster, kube_namespace)
            stopped_at = time.monotonic()
            running = harness.status(kube_cluster, kube_namespace)["chaos"][0]
            second.start()
            harness.wait_for(
                "the fault injected again",
                lambda: None if _envoy_filter(kube_cluster, kube_namespace) else "absent",
                timeout=30,
            )
            back_after = time.monotonic() - stopped_at
            again = _envoy_filter(kube_cluster, kube_namespace)
            final = harness.follow(
                kube_cluster,
                kube_namespace,
                lambda c: bool((c.get("chaos") or [{}])[0].get("judgedAt")),
                timeout=60,
                controller=second,
            )
        finally:
            first.stop()
            second.stop()
        assert after_stop is None, after_stop
        assert running["phase"] == "Running", running
        assert again is not None
        assert again["metadata"]["annotations"][faults.EXPIRES_ANNOTATION] == expires
        assert final["chaos"][0]["name"] == EXPERIMENT["name"], final["chaos"]
        # The second controller stopped too, with no fault left behind.
        assert _envoy_filter(kube_cluster, kube_namespace) is None
        log = first.log_path.read_text()
        assert '"faults_cleared": true' in log, first.log_tail()
        print(f"\nfault off at the stop, back {back_after:.2f}s after it (a new controller)")
