"""The kube test environment itself: identities, RBAC, schema validation, Istio's API, hygiene."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path
from typing import Any

from tests.kubeenv import cluster

REPO = Path(__file__).resolve().parents[3]


def a_canary(namespace: str, **analysis: Any) -> dict[str, Any]:
    """The README's Canary, with `analysis` fields replaced or added."""
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "accounts", "namespace": namespace},
        "spec": {
            "service": {"host": "accounts", "route": "primary"},
            "stable": {"subset": "v1", "labels": {"version": "v1"}},
            "canary": {
                "subset": "v2",
                "labels": {"version": "v2"},
                "targetRef": {"kind": "Deployment", "name": "accounts-v2"},
            },
            "analysis": {
                "interval": "30s",
                "threshold": 3,
                "stepWeights": [5, 10, 25, 50],
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
                **analysis,
            },
        },
    }


def test_controller_lists_canaries_everywhere_but_is_refused_secrets(
    kube_cluster: cluster.KubeCluster, kube_namespace: str
) -> None:
    """deploy/rbac.yaml grants the controller's ServiceAccount its work and nothing beyond."""
    kube_cluster.kubectl("create", "--filename=-", input=json.dumps(a_canary(kube_namespace)))

    status, body = kube_cluster.request(
        "GET", "/apis/canary.dev/v1alpha1/canaries", as_controller=True
    )
    assert status == 200, body
    names = {(c["metadata"]["namespace"], c["metadata"]["name"]) for c in body["items"]}
    assert (kube_namespace, "accounts") in names

    status, body = kube_cluster.request("GET", "/api/v1/secrets", as_controller=True)
    assert status == 403, body
    assert body["reason"] == "Forbidden"
    assert cluster.CONTROLLER_USER in body["message"]

    # The same through kubectl and the controller's kubeconfig.
    listed = kube_cluster.kubectl("get", "canaries", "--all-namespaces", as_controller=True)
    assert listed.returncode == 0, listed.stderr
    refused = kube_cluster.kubectl("get", "secrets", "--all-namespaces", as_controller=True)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()


def test_deploy_folder_passes_server_side_dry_run(kube_cluster: cluster.KubeCluster) -> None:
    """deploy/ is accepted by a real API server with the README's command (deploy/pipelines/
    holds CI pipelines, which the command leaves out)."""
    result = kube_cluster.kubectl(
        "apply", "--dry-run=server",
        "--filename", str(REPO / "deploy" / "crds"), "--filename", str(REPO / "deploy"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "customresourcedefinition.apiextensions.k8s.io/canaries.canary.dev" in result.stdout
    assert "clusterrole.rbac.authorization.k8s.io/" in result.stdout
    assert "deployment.apps/" in result.stdout, "deploy/ has no controller Deployment"


def test_schema_refuses_an_invalid_canary(
    kube_cluster: cluster.KubeCluster, kube_namespace: str
) -> None:
    """The committed CRD's schema is enforced by the server: wrong types and unknown fields."""
    wrong_type = a_canary(kube_namespace, threshold="x")
    result = kube_cluster.kubectl("create", "--filename=-", input=json.dumps(wrong_type))
    assert result.returncode != 0
    assert "spec.analysis.threshold" in result.stderr, result.stderr

    unknown = a_canary(kube_namespace, thresholdd=3)
    result = kube_cluster.kubectl("create", "--filename=-", input=json.dumps(unknown))
    assert result.returncode != 0
    assert 'unknown field "spec.analysis.thresholdd"' in result.stderr, result.stderr

    # The same Canary with its fields right is stored, so the refusals above were the schema's.
    result = kube_cluster.kubectl(
        "create", "--filename=-", input=json.dumps(a_canary(kube_namespace))
    )
    assert result.returncode == 0, result.stderr


def test_istio_virtual_service_is_served_at_networking_v1(
    kube_cluster: cluster.KubeCluster, kube_namespace: str
) -> None:
    """Istio's own CRDs are installed: a VirtualService round-trips at networking.istio.io/v1."""
    status, body = kube_cluster.request("GET", "/apis/networking.istio.io/v1")
    assert status == 200, body
    served = {resource["name"] for resource in body["resources"]}
    assert {"virtualservices", "destinationrules"} <= served

    virtual_service = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "accounts"},
        "spec": {
            "hosts": ["accounts"],
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": "accounts", "subset": "v1"}, "weight": 100},
                        {"destination": {"host": "accounts", "subset": "v2"}, "weight": 0},
                    ],
                }
            ],
        },
    }
    path = f"/apis/networking.istio.io/v1/namespaces/{kube_namespace}/virtualservices"
    status, body = kube_cluster.request("POST", path, virtual_service)
    assert status == 201, body
    status, body = kube_cluster.request("GET", f"{path}/accounts", as_controller=True)
    assert status == 200, body
    assert body["spec"]["http"][0]["route"][0]["weight"] == 100


def test_stop_leaves_no_process_no_port_and_no_files(kube_bin_dir: Path) -> None:
    """A stopped cluster's servers are gone, its port closed, and its working dir removed."""
    kube = cluster.start(kube_bin_dir)
    try:
        pids = [int(p.name) for p in Path("/proc").iterdir() if _runs_in(p, kube)]
        assert len(pids) == 2, "etcd and kube-apiserver, nothing else"
    finally:
        kube.stop()
    assert not kube.workdir.exists()
    assert not [pid for pid in pids if _alive(pid)]
    port = int(kube.url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def _runs_in(proc: Path, kube: cluster.KubeCluster) -> bool:
    if not proc.name.isdigit():
        return False
    try:
        return str(kube.workdir) in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_clearing_a_namespace_removes_objects_a_controller_would_keep(
    kube_cluster: cluster.KubeCluster,
) -> None:
    """What kube_namespace does after a test: finalized Canaries go too, the namespace ends."""
    namespace = "t-clear-" + secrets.token_hex(3)
    kube_cluster.create_namespace(namespace)
    held = a_canary(namespace)
    held["metadata"]["finalizers"] = ["canary.dev/test"]
    kube_cluster.kubectl("create", "--filename=-", input=json.dumps(held), check=True)

    kube_cluster.clear_namespace(namespace)

    status, _ = kube_cluster.request(
        "GET", f"/apis/canary.dev/v1alpha1/namespaces/{namespace}/canaries/accounts"
    )
    assert status == 404
    status, body = kube_cluster.request("GET", f"/api/v1/namespaces/{namespace}")
    assert status == 200, body
    assert body["status"]["phase"] == "Terminating"
