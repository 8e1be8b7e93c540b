"""Approval clicks into a running `canary run` on the real API server.

A rollout with two gates (before the rollout and before the promotion) is decided through both
transports: the first click arrives over Socket Mode from the local Slack (tests/slack), to
which the controller connected with the ChatProvider's app token; the second is POSTed, signed
with the provider's signing secret, to /slack/interactions. Each moves the rollout on, and the
status says who decided, how. A forged or stale POST decides nothing.

The other test runs a standby replica (another holder keeps the Lease), as one of several
behind a Service would be: it serves the endpoint all the same and writes the command
annotation; since it never ticks, the test writes the status of a waiting gate itself.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from canary.adapters.kube.rest import CANARY
from canary.api.commands import COMMAND_ANNOTATION
from canary.demo import scenario
from tests.e2e.kube import harness, test_cli
from tests.kubeenv import cluster
from tests.slack import signing
from tests.slack.server import SlackServer

NAME = "accounts"
SECRET = "e2e-signing-secret"
REVISION = "rev-e2e"


def _objects(namespace: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    meta = {"namespace": namespace}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "slack", **meta},
            "stringData": {"token": "xoxb-e2e", "signing": SECRET},
        },
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "ChatProvider",
            "metadata": {"name": "team-slack", **meta},
            "spec": {
                "slack": {
                    "token": {"name": "slack", "key": "token"},
                    "signingSecret": {"name": "slack", "key": "signing"},
                    # Never called here: the standby answers no one in chat.
                    "apiUrl": "http://127.0.0.1:9/api/",
                }
            },
        },
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": NAME, **meta},
            "spec": {
                "service": {"host": "accounts"},
                "stable": {"subset": "v1"},
                "canary": {"subset": "v2"},
                "analysis": {"interval": "30s", "stepWeights": [10, 50]},
                "notifications": [{"provider": "team-slack", "channel": "C0ROLLOUT"}],
                "approvals": {"before": ["promotion"], "approvers": {"users": ["U0ALICE"]}},
            },
        },
        {
            # Someone else leads for the next hour: this replica stays a standby.
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "canary-controller", **meta},
            "spec": {
                "holderIdentity": "someone-else",
                "leaseDurationSeconds": 3600,
                "acquireTime": now,
                "renewTime": now,
            },
        },
    ]


def _wait_at_the_gate(kube: cluster.KubeCluster, namespace: str) -> None:
    rest = harness.admin_rest(kube)
    body = rest.get(CANARY.path(namespace, NAME))
    body["status"] = {
        "phase": "Progressing",
        "revision": REVISION,
        "canaryWeight": 50,
        "step": 1,
        "waitingFor": "approval promotion",
        "approvals": [
            {
                "gate": "promotion",
                "revision": REVISION,
                "step": 1,
                "requestedAt": datetime.now(UTC).isoformat(),
            }
        ],
    }
    rest.put(CANARY.path(namespace, NAME, "status"), body)


def _click(namespace: str) -> dict[str, Any]:
    value = json.dumps({"canary": f"{namespace}/{NAME}", "revision": REVISION, "gate": "promotion"})
    return signing.block_actions(
        user="U0ALICE",
        action_id="canary.approve",
        value=value,
        channel="C0ROLLOUT",
        message_ts="1700000000.000100",
        response_url="http://127.0.0.1:9/actions/x",
    )


def _post(port: int, request: signing.SignedRequest) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(
            "POST", "/slack/interactions", body=request.body, headers=request.headers
        )
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def _annotation(
    kube: cluster.KubeCluster, namespace: str, name: str = NAME
) -> dict[str, Any] | None:
    annotations = harness.canary(kube, namespace, name)["metadata"].get("annotations") or {}
    text = annotations.get(COMMAND_ANNOTATION)
    return None if text is None else dict(json.loads(text))


def test_a_signed_click_writes_the_command_and_a_forged_one_nothing(
    kube_cluster: cluster.KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    kube, namespace = kube_cluster, kube_namespace
    harness.apply(kube, _objects(namespace))
    _wait_at_the_gate(kube, namespace)
    controller = harness.ControllerProcess(
        kube,
        tmp_path,
        prometheus_url="http://127.0.0.1:9",
        lease_namespace=namespace,
        preflight=False,
    ).start()
    try:
        assert not controller.leading()
        click = _click(namespace)

        assert _post(controller.port, signing.forged(click, time.time()))[0] == 401
        assert _post(controller.port, signing.stale(click, SECRET, time.time()))[0] == 401
        assert _annotation(kube, namespace) is None

        good = signing.signed(click, SECRET, time.time())
        status, text = _post(controller.port, good)
        assert status == 200, controller.log_tail()
        assert text.startswith(f"recorded: approve of {namespace}/{NAME}"), text
        command = _annotation(kube, namespace)
        assert command is not None
        assert command["verb"] == "approve"
        assert (command["by"], command["via"]) == ("U0ALICE", "slack")
        assert (command["revision"], command["gate"]) == (REVISION, "promotion")

        # The same request again decides nothing new; another approver's click is refused while
        # the first decision waits for the controller's tick.
        assert _post(controller.port, good) == (200, "already handled\n")
        later = signing.signed({**click, "trigger_id": "2"}, SECRET, time.time() + 1)
        status, text = _post(controller.port, later)
        assert status == 200
        assert "another decision is waiting" in text
        assert _annotation(kube, namespace) == command
    finally:
        controller.stop()


def _rollout(namespace: str, slack: SlackServer) -> list[dict[str, Any]]:
    """The demo's route, judged by time alone (no metrics: no Prometheus, no mesh), one step,
    and two gates; its ChatProvider on the local Slack with a signing secret and an app token."""
    ws = slack.workspace
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "slack", "namespace": namespace},
        "stringData": {"token": ws.bot_token, "signing": SECRET, "app": ws.app_token},
    }
    provider = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "ChatProvider",
        "metadata": {"name": "team-slack", "namespace": namespace},
        "spec": {
            "slack": {
                "token": {"name": "slack", "key": "token"},
                "signingSecret": {"name": "slack", "key": "signing"},
                "appToken": {"name": "slack", "key": "app"},
                "apiUrl": slack.url,
            }
        },
    }
    canary = scenario.canary(step_seconds=2, check_seconds=1)
    canary["spec"]["analysis"].update(stepWeights=[50], metrics=[])
    canary["spec"]["notifications"] = [{"provider": "team-slack", "channel": "C0ROLLOUT"}]
    canary["spec"]["approvals"] = {
        "before": ["rollout", "promotion"],
        "approvers": {"users": ["U0ALICE"]},
    }
    bodies = [scenario.virtual_service(), scenario.destination_rule(), canary]
    for body in bodies:
        body["metadata"]["namespace"] = namespace
    return [secret, provider, *bodies]


def _waiting_at(gate: str) -> Any:
    def check(current: dict[str, Any]) -> bool:
        approvals = current.get("approvals") or []
        return (
            bool(approvals) and approvals[-1]["gate"] == gate and not approvals[-1].get("decision")
        )

    return check


def _gate_click(namespace: str, revision: str, gate: str, action_ts: str) -> dict[str, Any]:
    value = json.dumps(
        {"canary": f"{namespace}/{scenario.SERVICE}", "revision": revision, "gate": gate}
    )
    return signing.block_actions(
        user="U0ALICE",
        action_id="canary.approve",
        value=value,
        channel="C0ROLLOUT",
        message_ts="1700000000.000100",
        response_url="http://127.0.0.1:9/actions/x",
        action_ts=action_ts,
    )


def test_two_gates_decided_through_socket_mode_and_the_signed_endpoint(
    kube_cluster: cluster.KubeCluster,
    kube_namespace: str,
    tmp_path: Path,
    slack: SlackServer,
) -> None:
    kube, namespace = kube_cluster, kube_namespace
    harness.apply(kube, _rollout(namespace, slack))
    controller = harness.ControllerProcess(
        kube,
        tmp_path,
        prometheus_url="http://127.0.0.1:9",
        leader_election=False,
        preflight=False,
    ).start()
    try:
        current = harness.follow(
            kube, namespace, _waiting_at("rollout"), timeout=30, controller=controller
        )
        assert current["canaryWeight"] == 0
        revision = current["revision"]

        # Socket Mode: the leader connected with the app token; Slack delivers the click.
        slack.wait_for_connections(1, timeout=15)
        envelope = slack.send_interactive(_gate_click(namespace, revision, "rollout", "1.1"))
        slack.wait_for_ack(envelope)
        current = harness.follow(
            kube, namespace, _waiting_at("promotion"), timeout=30, controller=controller
        )
        first = current["approvals"][0]
        assert (first["gate"], first["decision"]) == ("rollout", "approved")
        assert (first["by"], first["via"]) == ("U0ALICE", "slack")
        assert current["canaryWeight"] == 50

        # The signed endpoint: forged and stale decide nothing; a good one promotes.
        click = _gate_click(namespace, revision, "promotion", "2.1")
        before = _annotation(kube, namespace, scenario.SERVICE)
        assert _post(controller.port, signing.forged(click, time.time()))[0] == 401
        assert _post(controller.port, signing.stale(click, SECRET, time.time()))[0] == 401
        assert _annotation(kube, namespace, scenario.SERVICE) == before
        status, text = _post(controller.port, signing.signed(click, SECRET, time.time()))
        assert (status, text.split(":")[0]) == (200, "recorded"), text
        current = harness.follow(
            kube, namespace, lambda s: s.get("phase") == "Succeeded", timeout=40,
            controller=controller,
        )  # fmt: skip
        second = current["approvals"][1]
        assert (second["gate"], second["decision"], second["via"]) == (
            "promotion",
            "approved",
            "slack",
        )
    finally:
        controller.stop()


def test_people_outside_slack_decide_with_the_cli_held_to_rbac(
    kube_cluster: cluster.KubeCluster,
    kube_namespace: str,
    tmp_path: Path,
    slack: SlackServer,
) -> None:
    """`canary reject` by an operator (canary-operator) rolls the waiting rollout back; a viewer's
    `canary approve` is forbidden and writes nothing."""
    kube, namespace = kube_cluster, kube_namespace
    test_cli.bind_people(kube, namespace)
    harness.apply(kube, _rollout(namespace, slack))
    controller = harness.ControllerProcess(
        kube,
        tmp_path,
        prometheus_url="http://127.0.0.1:9",
        leader_election=False,
        preflight=False,
    ).start()
    try:
        harness.follow(kube, namespace, _waiting_at("rollout"), timeout=30, controller=controller)
        refused = _decide(kube.viewer_kubeconfig, "approve", namespace)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "forbidden" in refused.stderr
        rejected = _decide(kube.operator_kubeconfig, "reject", namespace)
        assert rejected.returncode == 0, rejected.stdout + rejected.stderr
        assert "rejected by octocat via cli" in rejected.stdout
        current = harness.follow(
            kube, namespace, lambda s: s.get("phase") == "Failed", timeout=30,
            controller=controller,
        )  # fmt: skip
    finally:
        controller.stop()
    [record] = current["approvals"]
    assert (record["gate"], record["decision"], record["by"], record["via"]) == (
        "rollout", "rejected", "octocat", "cli",
    )  # fmt: skip
    assert current["canaryWeight"] == 0


def _decide(kubeconfig: Path, verb: str, namespace: str) -> subprocess.CompletedProcess[str]:
    return test_cli.run(
        kubeconfig, verb, scenario.SERVICE, "-n", namespace, "--timeout", "30s",
        env={"GITHUB_ACTOR": "octocat"},
    )  # fmt: skip
