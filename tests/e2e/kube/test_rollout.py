"""Rollouts end to end: `canary run` on a real API server, our Pilot fed from it, real Envoys.

The controller runs as its own process under the ClusterRole of deploy/rbac.yaml; the weights
it writes reach Envoy the way they do in a cluster (API server, then a Pilot watching it, then
xDS), and its step clock starts only when Envoy's config_dump shows the split. Where traffic
decides a test, it is counted: which version answered the mesh's steady load (tests/e2e/answers.py),
not the product's own reading of Envoy's config, which stays a secondary check.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from canary.adapters.envoy_admin import EnvoyPropagation
from canary.localmesh import loadgen
from tests.e2e import answers
from tests.e2e.kube import harness
from tests.kubeenv.cluster import KubeCluster

if TYPE_CHECKING:
    from canary.localmesh.mesh import LocalMesh

STEPS = [0, 10, 25, 50, 100]
VERSIONS = {"v1", "v2"}


def _serves(mesh_admin: str, namespace: str, canary_weight: int) -> bool:
    return EnvoyPropagation([mesh_admin]).serves(
        namespace, harness.SERVICE, "primary", {"v1": 100 - canary_weight, "v2": canary_weight}
    )


def _load(mesh: LocalMesh) -> loadgen.LoadGenerator:
    assert mesh.load is not None, "the mesh runs its steady load"
    return mesh.load


def _only(load: loadgen.LoadGenerator, version: str, since: int) -> None:
    """Every request due from load second `since` on was answered by `version` (80 at least)."""
    counts = answers.wait_answered(load, since, at_least=80, timeout=20)
    why = answers.check_share(counts, version, 100, versions=VERSIONS)
    assert not why, (why, counts)


def _per_step(steps: answers.Steps) -> dict[int, str]:
    return {w: f"{dict(steps.counts(w))} in {steps.windows[w]}" for w in sorted(steps.windows)}


def _reasons(kube: KubeCluster, namespace: str) -> list[str]:
    return [event.get("reason", "") for event in harness.events(kube, namespace)]


def test_a_good_canary_is_promoted_step_by_step(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path) as (mesh, feed):
        harness.apply(kube_cluster, harness.objects(kube_namespace))
        controller = harness.ControllerProcess(
            kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        try:
            trace = harness.Trace()
            served: dict[int, bool] = {}
            steps = answers.Steps(_load(mesh))

            def done(current: dict[str, object]) -> bool:
                steps.record(current)
                weight = int(current.get("canaryWeight") or 0)  # type: ignore[call-overload]
                # Once a step's clock runs, Envoy serves its split. (The status names the next
                # weight before it is written, so only a started step says anything.)
                started = current.get("phase") == "Progressing" and current.get("stepStartedAt")
                if started and not served.get(weight):
                    served[weight] = _serves(mesh.admin_url, kube_namespace, weight)
                return current.get("phase") in ("Succeeded", "Failed")

            final = harness.follow(
                kube_cluster, kube_namespace, done, timeout=150, trace=trace, controller=controller
            )
            promoted = answers.second(_load(mesh)) + 1
            assert final["phase"] == "Succeeded", controller.log_tail()
            assert final["canaryWeight"] == 100
            # Every write the API server held, in order: one step at a time, none skipped.
            assert feed.canary_weights() == STEPS, feed.splits
            assert feed.refused is None
            # What decides: while each step's clock ran, users got v2 in the step's share.
            for weight in (10, 25, 50):
                counts = steps.counts(weight)
                assert sum(counts.values()) >= 60, (weight, counts, steps.windows)
                why = answers.check_share(counts, "v2", weight, versions=VERSIONS)
                assert not why, (weight, why, steps.windows)
            _only(_load(mesh), "v2", promoted)
            print(f"\nanswered per step (load seconds): {_per_step(steps)}")
            # The product's own reader agreed at each step (a secondary check).
            assert all(served.get(weight) for weight in (10, 25, 50)), served
            assert _serves(mesh.admin_url, kube_namespace, 100)
            vs = harness.get(
                kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
            )
            assert harness.route_weights(vs) == {"v1": 0, "v2": 100}
            reasons = _reasons(kube_cluster, kube_namespace)
            assert "Succeeded" in reasons or "Promoted" in reasons, reasons
            status, metrics = controller.get("/metrics")
            assert status == 200
            assert f'canary_weight{{name="demo",namespace="{kube_namespace}"}} 100.0' in metrics
        finally:
            controller.stop()


def test_a_bad_canary_is_rolled_back(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path, canary_error_rate=0.5) as (
        mesh,
        feed,
    ):
        harness.apply(kube_cluster, harness.objects(kube_namespace))
        controller = harness.ControllerProcess(
            kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        try:
            final = harness.follow(
                kube_cluster,
                kube_namespace,
                lambda current: current.get("phase") in ("Succeeded", "Failed"),
                timeout=120,
                controller=controller,
            )
            rolled_back = answers.second(_load(mesh)) + 1
            assert final["phase"] == "Failed", controller.log_tail()
            assert final["canaryWeight"] == 0
            # The canary was really exposed before it was judged: users got answers from it...
            assert answers.answered(_load(mesh), 0, rolled_back)["v2"] > 0
            # ...and none once the rollback was verified.
            _only(_load(mesh), "v1", rolled_back)
            vs = harness.get(
                kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
            )
            assert harness.route_weights(vs) == {"v1": 100, "v2": 0}
            assert _serves(mesh.admin_url, kube_namespace, 0)
            assert feed.canary_weights()[0] == 0
            assert feed.canary_weights()[-1] == 0
            # The rollback checked the live route before it called itself done.
            verified = {c["type"]: c for c in final.get("conditions") or []}["RollbackVerified"]
            assert verified["status"] == "True", verified
            failed = [c for c in final.get("checks") or [] if c.get("passed") is False]
            assert any(c["name"] == "request-success-rate" for c in failed), final
            events = harness.events(kube_cluster, kube_namespace)
            warnings = [e for e in events if e.get("type") == "Warning"]
            assert warnings, [e.get("reason") for e in events]
        finally:
            controller.stop()


def test_a_killed_leader_is_replaced_by_the_standby_which_resumes_from_the_status(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    lease = 4.0
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path) as (mesh, feed):
        harness.apply(kube_cluster, harness.objects(kube_namespace, step_seconds=8))
        replicas = [
            harness.ControllerProcess(
                kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url,
                identity=identity, lease_seconds=lease,
            ).start()
            for identity in ("canary-a", "canary-b")
        ]  # fmt: skip
        try:
            harness.wait_for(
                "one replica to lead",
                lambda: None if sum(r.leading() for r in replicas) == 1 else "no single leader",
                timeout=30,
            )
            leader = next(r for r in replicas if r.leading())
            standby = next(r for r in replicas if r is not leader)
            harness.follow(
                kube_cluster, kube_namespace, lambda c: c.get("canaryWeight") == 25,
                timeout=90, controller=leader,
            )  # fmt: skip
            # Two replicas, one acting: the standby has not run a single tick.
            assert not standby.leading()
            assert standby.ticks() == 0
            leader.kill()
            killed_at = time.monotonic()
            before = harness.status(kube_cluster, kube_namespace)
            harness.wait_for(
                "the standby to take over",
                lambda: None if standby.leading() else "standby",
                timeout=30,
            )
            takeover = time.monotonic() - killed_at
            final = harness.follow(
                kube_cluster, kube_namespace, lambda c: c.get("phase") in ("Succeeded", "Failed"),
                timeout=120, controller=standby,
            )  # fmt: skip
            promoted = answers.second(_load(mesh)) + 1
            if final["phase"] == "Succeeded":
                _only(_load(mesh), "v2", promoted)
        finally:
            for replica in replicas:
                replica.stop()
        # A dead leader's Lease must expire first, and then the standby's next try wins it.
        assert takeover < lease + 3.0, takeover
        assert before["phase"] == "Progressing"
        assert before["canaryWeight"] in (25, 50), before
        assert final["phase"] == "Succeeded", standby.log_tail()
        # Traffic never jumped and no step was repeated or skipped across the takeover.
        assert feed.canary_weights() == STEPS, feed.splits
        history = final.get("history") or []
        steps_judged = [entry.get("step") for entry in history]
        assert steps_judged == sorted(steps_judged), json.dumps(history)[:2000]


def test_an_invalid_canary_gets_a_condition_and_an_event_and_nothing_is_patched(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    vs, dr, canary = harness.objects(kube_namespace)
    missing_vs = json.loads(json.dumps(canary))
    missing_vs["metadata"]["name"] = "no-vs"
    missing_vs["spec"]["service"]["virtualService"] = "absent"
    no_route = json.loads(json.dumps(canary))
    no_route["metadata"]["name"] = "no-route"
    no_route["spec"]["service"]["route"] = "secondary"
    same_subsets = json.loads(json.dumps(canary))
    same_subsets["metadata"]["name"] = "same-subsets"
    same_subsets["spec"]["canary"] = {"subset": "v1", "labels": {"version": "v1"}}
    harness.apply(kube_cluster, [vs, dr])
    refused = harness.apply(
        kube_cluster,
        [{**canary, "metadata": {"name": "typo", "namespace": kube_namespace},
          "spec": {**canary["spec"], "analysys": {}}}],
        check=False,
    )  # fmt: skip
    # The real schema validation refuses an unknown field before any controller sees it.
    assert refused.returncode != 0
    assert "analysys" in refused.stderr, refused.stderr
    before = _written(kube_cluster, kube_namespace)
    harness.apply(kube_cluster, [missing_vs, no_route, same_subsets])
    controller = harness.ControllerProcess(
        kube_cluster, tmp_path, "http://127.0.0.1:1", leader_election=False
    ).start()
    try:
        expected = {
            "no-vs": "VirtualService",
            "no-route": "secondary",
            "same-subsets": "subset",
        }
        for name, words in expected.items():
            current = _wait_invalid(kube_cluster, kube_namespace, name)
            conditions = current.get("conditions") or []
            assert isinstance(conditions, list)
            invalid = [c for c in conditions if c.get("reason") == "InvalidSpec"]
            assert invalid, current
            assert words in invalid[0]["message"], current
        reasons = [
            (e["involvedObject"]["name"], e["reason"])
            for e in harness.events(kube_cluster, kube_namespace)
        ]
        for name in expected:
            assert (name, "InvalidSpec") in reasons, reasons
        # Invalid Canaries are still looked at every tick: a write on a later tick counts too.
        ticked = controller.ticks()
        harness.wait_for(
            "the controller to tick the Invalid Canaries again",
            lambda: None if controller.ticks() >= ticked + 6 else f"{controller.ticks()} ticks",
            timeout=30,
        )
        # Nothing patched: no weight written (the objects' versions and writers as they were,
        # and canary among no writer), no fault injected (no EnvoyFilter at all).
        after = _written(kube_cluster, kube_namespace)
        assert after == before
        for kind, (_, managers) in after.items():
            assert "canary" not in {entry["manager"] for entry in managers}, (kind, managers)
        code, filters = kube_cluster.request(
            "GET", f"/apis/networking.istio.io/v1alpha3/namespaces/{kube_namespace}/envoyfilters"
        )
        assert (code, filters.get("items")) == (200, []), filters
    finally:
        controller.stop()


def _written(kube: KubeCluster, namespace: str) -> dict[str, tuple[str, list[dict[str, object]]]]:
    """Each routing object's resourceVersion and managedFields (who wrote which field, when)."""
    found = {}
    for kind in ("virtualservices.networking.istio.io", "destinationrules.networking.istio.io"):
        meta = harness.get(kube, kind, namespace, "demo")["metadata"]
        found[kind] = (meta["resourceVersion"], meta.get("managedFields") or [])
    return found


def _wait_invalid(kube: KubeCluster, namespace: str, name: str) -> dict[str, object]:
    found: dict[str, object] = {}

    def invalid() -> str | None:
        found.clear()
        found.update(harness.status(kube, namespace, name))
        return None if found.get("phase") == "Invalid" else f"phase {found.get('phase')}"

    harness.wait_for(f"{name} to be Invalid", invalid, timeout=30)
    return found


def test_another_writers_changes_survive_and_its_weight_drift_is_named_and_undone(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    with harness.mesh_for(kube_cluster, kube_namespace, tmp_path) as (mesh, feed):
        harness.apply(kube_cluster, harness.objects(kube_namespace))
        controller = harness.ControllerProcess(
            kube_cluster, tmp_path, mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        try:
            harness.follow(
                kube_cluster, kube_namespace,
                lambda c: c.get("canaryWeight") == 10 and bool(c.get("stepStartedAt")),
                timeout=60, controller=controller,
            )  # fmt: skip
            # A GitOps tool sets a timeout on the same route, with its own field manager...
            _gitops_patch(kube_cluster, kube_namespace, ("add", "/spec/http/0/timeout", "7s"))
            # ...and then puts the weights back to what its Git says, mid-step.
            _gitops_patch(
                kube_cluster, kube_namespace,
                ("replace", "/spec/http/0/route/0/weight", 100),
                ("replace", "/spec/http/0/route/1/weight", 0),
            )  # fmt: skip
            final = harness.follow(
                kube_cluster, kube_namespace, lambda c: c.get("phase") in ("Succeeded", "Failed"),
                timeout=120, controller=controller,
            )  # fmt: skip
            if final["phase"] == "Succeeded":
                _only(_load(mesh), "v2", answers.second(_load(mesh)) + 1)
        finally:
            controller.stop()
        assert final["phase"] == "Succeeded", controller.log_tail()
        vs = harness.get(
            kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
        )
        assert vs["spec"]["http"][0]["timeout"] == "7s"
        assert harness.route_weights(vs) == {"v1": 0, "v2": 100}
        managers = {entry["manager"] for entry in vs["metadata"]["managedFields"]}
        assert "canary" in managers, managers
        drift = [
            e
            for e in harness.events(kube_cluster, kube_namespace)
            if e["reason"] == "WeightsDrifted"
        ]
        assert drift, [e["reason"] for e in harness.events(kube_cluster, kube_namespace)]
        assert "gitops" in drift[0]["message"], drift[0]["message"]
        # The drift is in the record, and the controller wrote the step's split back.
        weights = feed.canary_weights()
        assert weights[:4] == [0, 10, 0, 10], feed.splits
        assert weights[-1] == 100


def _gitops_patch(kube: KubeCluster, namespace: str, *ops: tuple[str, str, object]) -> None:
    patch = [{"op": op, "path": path, "value": value} for op, path, value in ops]
    kube.kubectl(
        "patch", "virtualservices.networking.istio.io", "demo", "-n", namespace,
        "--type=json", "--field-manager=gitops", "--patch", json.dumps(patch),
        check=True,
    )  # fmt: skip


def _deployment(namespace: str) -> dict[str, object]:
    labels = {"app": "demo", "version": "v2"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-v2", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "demo:v2"}]},
            },
        },
    }


def test_the_first_step_waits_for_the_target_deployment_to_be_ready(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    vs, dr, canary = harness.objects(kube_namespace)
    canary["spec"]["canary"]["targetRef"] = {"kind": "Deployment", "name": "demo-v2"}
    # No Prometheus and no Envoy: this test is about the gate, and the gate comes first. No
    # metric check either, or preflight would hold the first step on the missing Prometheus.
    canary["spec"]["analysis"]["metrics"] = []
    harness.apply(kube_cluster, [vs, dr, _deployment(kube_namespace), canary])
    controller = harness.ControllerProcess(
        kube_cluster, tmp_path, "http://127.0.0.1:1", leader_election=False
    ).start()
    try:
        harness.follow(
            kube_cluster, kube_namespace, lambda c: c.get("phase") == "Initializing",
            timeout=30, controller=controller,
        )  # fmt: skip
        harness.wait_for(
            "the controller to have looked a few times",
            lambda: None if controller.ticks() >= 3 else f"{controller.ticks()} ticks",
            timeout=20,
        )
        gated = harness.status(kube_cluster, kube_namespace)
        assert gated["canaryWeight"] == 0
        assert gated["message"] == "waiting for Deployment demo-v2 to be ready", gated
        vs_now = harness.get(
            kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
        )
        assert harness.route_weights(vs_now) == {"v1": 100, "v2": 0}
        # No controller-manager here: the test plays it, as the Deployment's rollout finishes.
        status_path = f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/demo-v2/status"
        code, body = kube_cluster.request(
            "PATCH",
            status_path,
            {"status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                        "readyReplicas": 2, "availableReplicas": 2}},
            content_type="application/merge-patch+json",
        )  # fmt: skip
        assert code == 200, body
        moved = harness.follow(
            kube_cluster, kube_namespace, lambda c: c.get("canaryWeight") == 10,
            timeout=30, controller=controller,
        )  # fmt: skip
        assert moved["phase"] == "Progressing"
    finally:
        controller.stop()
