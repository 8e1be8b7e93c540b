"""A Canary made Invalid mid-rollout, on the real API server: the split goes back to stable.

`canary run` as the controller identity, the local mesh's Pilot fed from the API server, real
Envoys and Prometheus. A MetricTemplate the Canary needs is deleted once weights moved: the
controller must send 100% back to the stable subset (and say why), and the deciding evidence is
the requests the load generator got answered, per version, after the revert reached Envoy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.e2e.kube import harness, releases
from tests.kubeenv.cluster import KubeCluster


def _template(namespace: str, prometheus_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": "queue-depth", "namespace": namespace},
        # A query that always answers 0, so only its deletion can stop the rollout.
        "spec": {"provider": {"prometheus": {"address": prometheus_url}}, "query": "vector(0)"},
    }


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


def test_a_template_deleted_mid_rollout_sends_everything_back_to_stable(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path) as (mesh, feed):
        bodies = harness.objects(kube_namespace, step_seconds=30)
        canary = bodies[-1]
        canary["spec"]["analysis"]["metrics"].append(
            {
                "name": "queue-depth",
                "templateRef": {"name": "queue-depth"},
                "thresholdRange": {"max": 1},
            }
        )
        harness.apply(kube_cluster, [_template(kube_namespace, mesh.prometheus_url), *bodies])
        controller = harness.ControllerProcess(
            kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        try:
            harness.follow(
                kube_cluster,
                kube_namespace,
                lambda s: (
                    s.get("phase") == "Progressing"
                    and int(s.get("canaryWeight") or 0) > 0
                    and bool(s.get("stepStartedAt"))
                ),
                timeout=90,
                controller=controller,
            )
            served = releases.Served(mesh, kube_namespace)
            assert served.answered("v2", 0) > 0, "the canary never answered before the revert"
            # The API server's schema refuses a hand-edited phase: only a status from another
            # version of the controller can be unreadable there (tests/unit covers that path).
            refused = kube_cluster.kubectl(
                "patch",
                "canary",
                harness.SERVICE,
                "-n",
                kube_namespace,
                "--subresource=status",
                "--type=merge",
                "-p",
                '{"status":{"phase":"Sideways"}}',
                check=False,
            )
            assert refused.returncode != 0, refused.stdout
            assert "Sideways" in refused.stderr, refused.stderr
            rule_before = harness.get(
                kube_cluster, "destinationrules.networking.istio.io", kube_namespace, "demo"
            )["metadata"]["resourceVersion"]

            kube_cluster.kubectl("delete", "metrictemplate", "queue-depth", "-n", kube_namespace)
            final = harness.follow(
                kube_cluster,
                kube_namespace,
                lambda s: s.get("phase") == "Invalid" and s.get("canaryWeight") == 0,
                timeout=30,
                controller=controller,
            )
            assert "queue-depth" in final["message"], final["message"]
            restored = _conditions(final)["StableRestored"]
            assert restored["status"] == "True", restored
            assert restored["message"].endswith("100% sent back to v1 until the Canary is fixed")

            # The status is written first, the route right after it (a restart between the two
            # resumes from the status): the route may lag the status by one write.
            def route_restored() -> str | None:
                vs = harness.get(
                    kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
                )
                weights = harness.route_weights(vs)
                return None if weights == {"v1": 100, "v2": 0} else f"the route is at {weights}"

            harness.wait_for("the route back at 100% v1", route_restored, timeout=10)
            # Touches nothing else: the DestinationRule is as it was.
            rule_after = harness.get(
                kube_cluster, "destinationrules.networking.istio.io", kube_namespace, "demo"
            )["metadata"]["resourceVersion"]
            assert rule_after == rule_before
            assert feed.canary_weights()[-1] == 0, feed.splits

            # The deciding evidence: once Envoy serves the revert, no request reaches v2.
            def only_stable_answers() -> str | None:
                since = served.load_second()
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline and served.load_second() < since + 2:
                    time.sleep(0.2)
                canary, stable = served.answered("v2", since + 1), served.answered("v1", since + 1)
                if canary == 0 and stable > 0:
                    return None
                return f"from load second {since + 1}: v2 answered {canary}, v1 {stable}"

            harness.wait_for("only v1 to answer", only_stable_answers, timeout=20, every=0.1)
            reasons = [e.get("reason") for e in harness.events(kube_cluster, kube_namespace)]
            assert "StableRestored" in reasons, reasons

            # Fixed: the rollout starts over from the first step.
            harness.apply(kube_cluster, [_template(kube_namespace, mesh.prometheus_url)])
            harness.follow(
                kube_cluster,
                kube_namespace,
                lambda s: s.get("phase") == "Progressing" and s.get("canaryWeight") == 10,
                timeout=30,
                controller=controller,
            )
        finally:
            controller.stop()
