"""What the release tests share: Deployments the test plays the controller-manager for, the CLI
as a pipeline runs it, and a watch on what Envoy serves and which version answered.

There is no controller-manager on the test API server, so a Deployment is made ready by
writing its status, as its rollout finishing would; a new pod template bumps its generation,
and it is not ready again until the test writes the matching status.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.adapters.envoy_admin import served_splits
from canary.api import istio
from canary.localmesh.mesh import LocalMesh
from tests.e2e.kube import harness
from tests.kubeenv.cluster import OPERATOR_USER, KubeCluster

DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"
USER_ROLES = Path(__file__).resolve().parents[3] / "deploy" / "rbac-users.yaml"


def deployment(namespace: str, version: str, image: str | None = None) -> dict[str, Any]:
    labels = {"app": harness.SERVICE, "version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{harness.SERVICE}-{version}", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image or f"demo:{version}"}]},
            },
        },
    }


def create_ready(kube: KubeCluster, namespace: str, version: str) -> None:
    code, body = kube.request(
        "POST", DEPLOYMENTS.format(namespace=namespace), deployment(namespace, version)
    )
    assert code == 201, body
    make_ready(kube, namespace, version)


def make_ready(kube: KubeCluster, namespace: str, version: str) -> None:
    """The Deployment's rollout finished: its status catches up with its generation."""
    path = f"{DEPLOYMENTS.format(namespace=namespace)}/{harness.SERVICE}-{version}"
    code, body = kube.request("GET", path)
    assert code == 200, body
    generation = body["metadata"]["generation"]
    ready = {
        "observedGeneration": generation,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }
    code, body = kube.request(
        "PATCH",
        f"{path}/status",
        {"status": ready},
        content_type="application/merge-patch+json",
    )
    assert code == 200, body


def new_image(kube: KubeCluster, namespace: str, version: str, image: str) -> None:
    path = f"{DEPLOYMENTS.format(namespace=namespace)}/{harness.SERVICE}-{version}"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    code, body = kube.request(
        "PATCH", path, patch, content_type="application/strategic-merge-patch+json"
    )
    assert code == 200, body


def bind_operator(kube: KubeCluster, namespace: str) -> None:
    """The pipeline's identity: deploy/rbac-users.yaml's canary-operator, in this namespace."""
    kube.kubectl("apply", "--filename", str(USER_ROLES), check=True)
    kube.kubectl(
        "create", "rolebinding", "pipeline", "--clusterrole=canary-operator",
        f"--user={OPERATOR_USER}", "--namespace", namespace, check=True,
    )  # fmt: skip

    def bound() -> str | None:
        allowed = kube.kubectl(
            "auth", "can-i", "patch", "canaries.canary.dev", "--namespace", namespace,
            f"--as={OPERATOR_USER}",
        )  # fmt: skip
        return None if allowed.returncode == 0 else "not yet"

    # The authorizer reads bindings from an informer: a moment passes before one holds.
    harness.wait_for("the operator's RoleBinding to hold", bound, timeout=30, every=0.3)


def cli(kube: KubeCluster, namespace: str, *args: str, timeout: float = 240) -> tuple[int, str]:
    """`canary ARGS` as a pipeline runs it, with the operator's identity; (exit code, output)."""
    argv = [
        str(harness.CANARY_BIN),
        *args,
        "-n",
        namespace,
        "--kubeconfig",
        str(kube.operator_kubeconfig),
    ]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, start_new_session=True
    )
    return result.returncode, result.stdout + result.stderr


@dataclass
class Served:
    """What the client-side Envoy serves, sampled every 100 ms, and who answered each second.

    A subset "gets traffic" when the route Envoy serves gives it a weight, or when one of its
    instances answered a request of the steady load.
    """

    mesh: LocalMesh
    namespace: str
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Served:
        self._thread = threading.Thread(target=self._run, name="served", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        fqdn = istio.fqdn(harness.SERVICE, self.namespace)
        url = f"{self.mesh.admin_url}/config_dump?resource=dynamic_route_configs"
        while not self._stop.wait(0.1):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    dump = json.loads(response.read())
            except (OSError, ValueError):
                continue
            for split in served_splits(dump, fqdn, "primary"):
                self.samples.append((time.monotonic(), split))

    def envoy_gave(self, subset: str, since: float) -> list[dict[str, int]]:
        """Every split Envoy served after `since` that gave `subset` a weight."""
        return [split for at, split in self.samples if at >= since and split.get(subset, 0) > 0]

    def answered(self, version: str, since_second: int) -> int:
        """Requests the version's instances answered from load-generator second `since_second`."""
        load = self.mesh.load
        assert load is not None
        counts = load.snapshot().per_second
        return sum(
            count
            for second, outcomes in counts.items()
            if second >= since_second
            for outcome, count in outcomes.items()
            if outcome.version == version
        )

    def load_second(self) -> int:
        """The load generator's current second: what `answered` counts from."""
        load = self.mesh.load
        assert load is not None
        return int(load.snapshot().elapsed_s)
