"""Preflight through the real API server, as the controller identity deploy/rbac.yaml binds.

A canary pod without Istio's sidecar holds the rollout in Initializing with a Preflight
condition that names the pod and says what to fix, one Event, and the route untouched; `canary
preflight` prints the same and exits 1. Replacing the pod with one that has the native sidecar
(an `istio-proxy` init container that keeps running) lets the first step go. No Prometheus, no
Envoy and no metric check: this test is about the pods (the other items say "not checked").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import Rest, connect
from canary.adapters.kube.sidecars import KubePods
from canary.errors import Unavailable
from canary.ports import RouteRef, SubsetRef
from tests.e2e.kube import harness
from tests.kubeenv.cluster import KubeCluster

CANARY_BIN = Path(sys.executable).with_name("canary")


def _pod(namespace: str, name: str, version: str, *, sidecar: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": f"demo:{version}"}]}
    proxy = {"name": "istio-proxy", "image": "istio/proxyv2"}
    if sidecar == "container":
        spec["containers"].append(proxy)
    elif sidecar == "native":
        spec["initContainers"] = [{**proxy, "restartPolicy": "Always"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "demo", "version": version},
        },
        "spec": spec,
    }


def _create_ready(kube: KubeCluster, body: dict[str, Any]) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    code, answer = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
    assert code == 201, answer
    # No kubelet here: the test says the pod is ready, as a kubelet would.
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    code, answer = kube.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{name}/status",
        ready,
        content_type="application/merge-patch+json",
    )
    assert code == 200, answer


def _preflight_cli(kube: KubeCluster, namespace: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CANARY_BIN), "preflight", "demo", "-n", namespace,
         "--kubeconfig", str(kube.admin_kubeconfig)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_pod_without_the_sidecar_holds_the_first_step_until_it_is_replaced(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    vs, dr, canary = harness.objects(kube_namespace)
    canary["spec"]["analysis"]["metrics"] = []
    canary["spec"].pop("chaos", None)
    harness.apply(kube_cluster, [vs, dr, canary])
    _create_ready(kube_cluster, _pod(kube_namespace, "demo-v1-a", "v1", sidecar="container"))
    _create_ready(kube_cluster, _pod(kube_namespace, "demo-v2-a", "v2", sidecar="none"))
    controller = harness.ControllerProcess(
        kube_cluster, tmp_path, "http://127.0.0.1:1", leader_election=False
    ).start()
    try:
        held = harness.follow(
            kube_cluster, kube_namespace,
            lambda c: c.get("message", "").startswith("waiting for preflight"),
            timeout=30, controller=controller,
        )  # fmt: skip
        assert held["phase"] == "Initializing"
        assert held["canaryWeight"] == 0
        condition = next(c for c in held["conditions"] if c["type"] == "Preflight")
        assert condition["status"] == "False"
        assert (
            "✗ sidecars: subset v2: demo-v2-a without istio-proxy; fix: enable sidecar"
            in (condition["message"])
        )
        assert "- callers' proxies: not checked: no proxy visible" in condition["message"]
        vs_now = harness.get(
            kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
        )
        assert harness.route_weights(vs_now) == {"v1": 100, "v2": 0}
        printed = _preflight_cli(kube_cluster, kube_namespace)
        assert printed.returncode == 1, printed
        lines = printed.stdout.splitlines()
        assert lines, printed.stderr
        assert "preflight failed" in lines[0], lines
        assert any(line.startswith("✗ sidecars: subset v2: demo-v2-a") for line in lines)

        code, answer = kube_cluster.request(
            "DELETE", f"/api/v1/namespaces/{kube_namespace}/pods/demo-v2-a"
        )
        assert code == 200, answer
        _create_ready(kube_cluster, _pod(kube_namespace, "demo-v2-b", "v2", sidecar="native"))
        moved = harness.follow(
            kube_cluster, kube_namespace, lambda c: c.get("canaryWeight") == 10,
            timeout=30, controller=controller,
        )  # fmt: skip
        assert moved["phase"] == "Progressing"
        condition = next(c for c in moved["conditions"] if c["type"] == "Preflight")
        assert condition["status"] == "True"
        assert "✓ sidecars: ready pods with the sidecar: v1 1/1, v2 1/1" in condition["message"]
        failed = [
            e for e in harness.events(kube_cluster, kube_namespace)
            if e.get("reason") == "PreflightFailed"
        ]  # fmt: skip
        # Once for the problem, however many ticks saw it.
        assert len(failed) == 1, failed
        assert failed[0].get("count", 1) == 1, failed
        printed = _preflight_cli(kube_cluster, kube_namespace)
        assert printed.returncode == 0, printed
    finally:
        controller.stop()


def test_pods_the_identity_may_not_list_are_unknown_never_a_pass(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    """The viewer role has no `list pods`: the same question as the controller's, refused."""
    rest = Rest(connect(str(kube_cluster.viewer_kubeconfig)))
    pods = KubePods(rest, ClusterCache(rest))
    route = RouteRef(kube_namespace, "demo", "demo", None, "demo")
    with pytest.raises(Unavailable, match=f"^forbidden to list pods in namespace {kube_namespace}"):
        pods.subset_pods(route, SubsetRef("v2", (("version", "v2"),)))
