"""deploy/ read as YAML: least privilege, a restricted pod, one Namespace said the same way twice.

The API server's own verdict on these files is in tests/e2e/kube (a server-side dry run); this
checks what a server would accept but a reviewer would not: a verb too many, a root container.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# What the controller does and nothing more (DESIGN.md, "Resources").
CONTROLLER_RULES = {
    # patch: the controller's finalizer (metadata.finalizers), never the spec.
    ("canary.dev", "canaries"): {"get", "list", "watch", "patch"},
    ("canary.dev", "canaries/status"): {"get", "update", "patch"},
    ("canary.dev", "metrictemplates"): {"get", "list", "watch"},
    # Where notifications go; the credentials they name are Secrets, read one by one.
    ("canary.dev", "chatproviders"): {"get", "list", "watch"},
    ("networking.istio.io", "virtualservices"): {"get", "list", "watch", "patch"},
    ("networking.istio.io", "destinationrules"): {"get", "list", "watch", "patch"},
    # Preflight's mTLS item reads them from a cache; never written.
    ("security.istio.io", "peerauthentications"): {"get", "list", "watch"},
    # The fault experiments' own EnvoyFilters: the only deletable resource.
    ("networking.istio.io", "envoyfilters"): {"get", "list", "watch", "create", "update", "delete"},
    ("apps", "deployments"): {"get", "list", "watch"},
    # scaleDownAfter, and nothing else of a Deployment.
    ("apps", "deployments/scale"): {"patch"},
    # The Secrets a provider or a webhook names, one by one.
    ("", "secrets"): {"get"},
    # A fault for some of the canary's pods lists them once, when it is injected.
    ("", "pods"): {"list"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("coordination.k8s.io", "leases"): {"get", "create", "update"},
}

# What `canary status`, `wait` and `explain` read (rbac-users.yaml).
VIEWER_RULES = {
    ("canary.dev", "canaries"): {"get", "list", "watch"},
    ("canary.dev", "metrictemplates"): {"get", "list", "watch"},
    ("", "events"): {"get", "list"},
    ("apps", "deployments"): {"get"},
}
# The viewer's and the one write every command makes: a merge patch of the Canary (an
# annotation or the spec), never its status, never anything else.
OPERATOR_RULES = {**VIEWER_RULES, ("canary.dev", "canaries"): {"get", "list", "watch", "patch"}}


def documents(name: str) -> list[dict[str, Any]]:
    with (DEPLOY / name).open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in documents(name) if doc["kind"] == kind]
    assert len(found) == 1, f"{name}: expected one {kind}, found {len(found)}"
    return found[0]


def test_every_document_names_its_api_kind_and_name() -> None:
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in documents(path.name):
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path.name
            assert doc["metadata"]["name"], path.name


def test_the_namespace_sorts_first_and_rbac_yaml_repeats_it_unchanged() -> None:
    assert sorted(path.name for path in DEPLOY.glob("*.yaml"))[0] == "00-namespace.yaml"
    assert one("Namespace", "rbac.yaml") == one("Namespace", "00-namespace.yaml")


def granted(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault((group, resource), set()).update(rule["verbs"])
    return found


def test_the_controller_role_grants_exactly_its_work() -> None:
    assert granted(one("ClusterRole", "rbac.yaml")) == CONTROLLER_RULES


def test_the_roles_for_people_grant_reading_and_patching_canaries_only() -> None:
    roles = {doc["metadata"]["name"]: doc for doc in documents("rbac-users.yaml")}
    assert {doc["kind"] for doc in roles.values()} == {"ClusterRole"}
    assert set(roles) == {"canary-viewer", "canary-operator"}
    assert granted(roles["canary-viewer"]) == VIEWER_RULES
    assert granted(roles["canary-operator"]) == OPERATOR_RULES


def test_the_binding_names_the_pods_service_account() -> None:
    binding = one("ClusterRoleBinding", "rbac.yaml")
    account = one("ServiceAccount", "rbac.yaml")
    pod = one("Deployment", "controller.yaml")["spec"]["template"]["spec"]
    assert binding["roleRef"]["name"] == one("ClusterRole", "rbac.yaml")["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_the_controller_runs_restricted_and_probed_on_its_metrics_port() -> None:
    deployment = one("Deployment", "controller.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert deployment["spec"]["replicas"] == 2
    assert container["args"][:3] == ["run", "--metrics-address", "0.0.0.0:8080"]
    (port,) = container["ports"]
    assert port["containerPort"] == 8080
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    pod_name = {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {"name": "POD_NAME", "valueFrom": pod_name} in container["env"]
    assert container["resources"]["limits"]["memory"]
