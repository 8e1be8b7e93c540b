"""The `canary` command against the real API server, as the people deploy/rbac-users.yaml is for.

A viewer (canary-viewer) reads status, explains and waits, and every write is refused with who
may not do what, nothing written. An operator (canary-operator) writes a command into the
annotation; no controller runs here, so the command gives up after its --timeout with exit 2
and removes its request. The command runs as a process of its own, with its own kubeconfig, as
a pipeline step would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from canary.adapters.kube.workloads import template_revision
from canary.api.commands import COMMAND_ANNOTATION
from canary.api.resources import Canary
from canary.engine import revision
from tests.kubeenv import cluster

REPO = Path(__file__).resolve().parents[3]
USER_ROLES = REPO / "deploy" / "rbac-users.yaml"
CANARY_BIN = Path(sys.executable).with_name("canary")
NAME = "accounts"
CANARIES = "/apis/canary.dev/v1alpha1/namespaces/{namespace}/canaries"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"


def a_canary(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "service": {"host": "accounts", "route": "primary"},
            "stable": {"subset": "v1", "labels": {"app": "accounts", "version": "v1"}},
            "canary": {
                "subset": "v2",
                "labels": {"app": "accounts", "version": "v2"},
                "targetRef": {"kind": "Deployment", "name": "accounts-v2"},
            },
            "analysis": {
                "interval": "30s",
                "threshold": 3,
                "stepWeights": [10, 25, 50],
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
            },
        },
    }


def a_deployment(namespace: str, version: str) -> dict[str, Any]:
    labels = {"app": "accounts", "version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"accounts-{version}", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": f"accounts:{version}"}]},
            },
        },
    }


@pytest.fixture
def canary_ns(kube_cluster: cluster.KubeCluster, kube_namespace: str) -> str:
    """A namespace with the Canary and its Deployments, the viewer and the operator bound to
    their roles there (RoleBindings to the ClusterRoles, as a team would get them)."""
    kube = kube_cluster
    for version in ("v2", "v3"):
        created, answer = kube.request(
            "POST",
            DEPLOYMENTS.format(namespace=kube_namespace),
            a_deployment(kube_namespace, version),
        )
        assert created == 201, answer
    created, answer = kube.request(
        "POST", CANARIES.format(namespace=kube_namespace), a_canary(kube_namespace)
    )
    assert created == 201, answer
    bind_people(kube, kube_namespace)
    return kube_namespace


def bind_people(kube: cluster.KubeCluster, namespace: str) -> None:
    """The viewer and the operator bound to their roles in `namespace` (RoleBindings to the
    ClusterRoles, as a team would get them), once the authorizer holds them."""
    kube.kubectl("apply", "--filename", str(USER_ROLES), check=True)
    for user, role in (
        (cluster.VIEWER_USER, "canary-viewer"),
        (cluster.OPERATOR_USER, "canary-operator"),
    ):
        kube.kubectl(
            "create", "rolebinding", f"{role}-{user}", f"--clusterrole={role}", f"--user={user}",
            "--namespace", namespace, check=True,
        )  # fmt: skip

    def bound() -> str | None:
        for user, verb in ((cluster.VIEWER_USER, "get"), (cluster.OPERATOR_USER, "patch")):
            allowed = kube.kubectl(
                "auth", "can-i", verb, "canaries.canary.dev", "--namespace", namespace,
                f"--as={user}",
            )  # fmt: skip
            if allowed.returncode != 0:
                return f"{user} may not {verb} canaries yet"
        return None

    # The authorizer reads bindings from an informer: a moment passes before they hold.
    cluster.poll("the RoleBindings to take effect", bound, timeout=30.0, interval=0.3)


def canary(kube: cluster.KubeCluster, namespace: str) -> dict[str, Any]:
    status, body = kube.request("GET", f"{CANARIES.format(namespace=namespace)}/{NAME}")
    assert status == 200, body
    return dict(body)


def current_revision(kube: cluster.KubeCluster, namespace: str) -> str:
    """The revision the controller would judge, worked out as observe.py does."""
    spec = Canary.model_validate(
        {k: v for k, v in canary(kube, namespace).items() if k != "status"}
    )
    status, deployment = kube.request(
        "GET", f"{DEPLOYMENTS.format(namespace=namespace)}/accounts-v2"
    )
    assert status == 200, deployment
    return revision.of(spec.spec, target_revision=template_revision(deployment))


def set_status(kube: cluster.KubeCluster, namespace: str, **fields: Any) -> None:
    """Writes the status as the controller would (as the admin: no controller runs here)."""
    body = canary(kube, namespace)
    body["status"] = {
        "revision": current_revision(kube, namespace),
        "stableSubset": "v1",
        "canarySubset": "v2",
        **fields,
    }
    status, answer = kube.request(
        "PUT", f"{CANARIES.format(namespace=namespace)}/{NAME}/status", body
    )
    assert status == 200, answer


def run(
    kubeconfig: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CANARY_BIN), *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_environment(env),
        check=False,
    )


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("CANARY_STATE_DIR", "KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    return {**environment, **(extra or {})}


def test_a_viewer_reads_status_explain_and_wait_but_may_write_nothing(
    kube_cluster: cluster.KubeCluster, canary_ns: str
) -> None:
    kube, viewer = kube_cluster, kube_cluster.viewer_kubeconfig
    set_status(kube, canary_ns, phase="Progressing", canaryWeight=25, step=1, message="step 2")
    kube.request(
        "POST",
        f"/api/v1/namespaces/{canary_ns}/events",
        {
            "metadata": {"name": f"{NAME}.started", "namespace": canary_ns},
            "involvedObject": {
                "apiVersion": "canary.dev/v1alpha1",
                "kind": "Canary",
                "namespace": canary_ns,
                "name": NAME,
            },
            "reason": "RolloutStarted",
            "message": "rolling out v2 in place of v1",
            "type": "Normal",
            "source": {"component": "canary-controller"},
            "firstTimestamp": "2026-01-01T12:00:00Z",
            "lastTimestamp": "2026-01-01T12:00:00Z",
            "count": 1,
        },
    )

    shown = run(viewer, "status", NAME, "-n", canary_ns)
    assert shown.returncode == 0, shown.stderr
    assert f"Canary {canary_ns}/{NAME}: Progressing" in shown.stdout
    assert "traffic:      weight 25% to v2, stable v1" in shown.stdout
    listed = run(viewer, "status", "-n", canary_ns, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [item["canaryWeight"] for item in json.loads(listed.stdout)] == [25]
    explained = run(viewer, "explain", NAME, "-n", canary_ns)
    assert explained.returncode == 0, explained.stderr
    assert "Normal  RolloutStarted: rolling out v2 in place of v1" in explained.stdout

    before = canary(kube, canary_ns)["metadata"]["resourceVersion"]
    refused = (
        f"forbidden: {cluster.VIEWER_USER} may not patch canaries in {canary_ns} "
        "(ask for the canary-operator role)"
    )
    for args in (["abort", NAME], ["promote", NAME, "--force"], ["pause", NAME]):
        result = run(viewer, *args, "-n", canary_ns)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stderr.strip() == refused, args
        assert "Traceback" not in result.stderr
    assert canary(kube, canary_ns)["metadata"]["resourceVersion"] == before

    set_status(kube, canary_ns, phase="Succeeded", canaryWeight=100, stableSubset="v2")
    waited = run(viewer, "wait", NAME, "-n", canary_ns, "--timeout", "20s")
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    assert "Succeeded" in waited.stdout
    before = canary(kube, canary_ns)["metadata"]["resourceVersion"]
    released = run(
        viewer, "release", NAME, "-n", canary_ns, "--to", "v3", "--target", "accounts-v3"
    )
    assert released.returncode == 1, (released.stdout, released.stderr)
    assert released.stderr.strip() == refused
    assert canary(kube, canary_ns)["metadata"]["resourceVersion"] == before
    missing = run(viewer, "wait", "nope", "-n", canary_ns, "--timeout", "5s")
    assert missing.returncode == 2
    assert f"Canary {canary_ns}/nope not found" in missing.stderr


def test_an_operators_abort_writes_the_request_and_without_a_controller_gives_up_and_removes_it(
    kube_cluster: cluster.KubeCluster, canary_ns: str
) -> None:
    kube, operator = kube_cluster, kube_cluster.operator_kubeconfig
    set_status(kube, canary_ns, phase="Progressing", canaryWeight=10)
    paused = run(operator, "pause", NAME, "-n", canary_ns)
    assert paused.returncode == 0, paused.stderr
    assert canary(kube, canary_ns)["spec"]["suspend"] is True

    argv = [str(CANARY_BIN), "abort", NAME, "-n", canary_ns, "--timeout", "4s"]
    argv += ["--kubeconfig", str(operator)]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment({"GITHUB_ACTOR": "octocat"}),
    )
    try:
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not seen:
            body = canary(kube, canary_ns)
            text = (body["metadata"].get("annotations") or {}).get(COMMAND_ANNOTATION)
            if text:
                seen = {"command": json.loads(text), "suspend": body["spec"].get("suspend")}
            time.sleep(0.1)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert seen, "the request never appeared in the annotation"
    command = seen["command"]
    assert command["verb"] == "abort"
    assert command["by"] == "octocat"
    assert command["force"] is False
    assert len(command["id"]) >= 8
    # The rollback must move weights: the same write resumed the paused Canary.
    assert seen["suspend"] is False
    assert "was paused: resuming it so the rollback can move the weights" in stdout
    assert process.returncode == 2, (stdout, stderr)
    assert stderr.strip() == "the controller did not pick the command up within 4s (is it running?)"
    after = canary(kube, canary_ns)
    assert COMMAND_ANNOTATION not in (after["metadata"].get("annotations") or {})
    managers = {entry["manager"] for entry in after["metadata"].get("managedFields") or []}
    assert "canary" in managers
