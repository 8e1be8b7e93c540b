"""Releases in a row on the real API server: one change or one `canary release` starts each, one
`canary wait` gives each verdict, and a retired subset never gets traffic back.

The controller runs as `canary run` under deploy/rbac.yaml's ClusterRole, the CLI as the
operator identity of deploy/rbac-users.yaml, and the local mesh's Pilot serves what the API
server holds, so "traffic" is read from Envoy (the route it serves, sampled every 100 ms) and
from the steady load (which version answered each request), not only from the VirtualService.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from canary.localmesh.mesh import LocalMesh, VersionSpec
from tests.e2e.kube import harness, releases
from tests.e2e.kube.meshfeed import MeshFeed
from tests.kubeenv.cluster import KubeCluster

VERSIONS = ("v1", "v2", "v3", "v4")


def _canary(namespace: str, *, step_seconds: int = 5) -> list[dict[str, Any]]:
    vs, dr, canary = harness.objects(namespace, step_seconds=step_seconds, check_seconds=1)
    spec = canary["spec"]
    spec["stable"]["targetRef"] = {"name": f"{harness.SERVICE}-v1"}
    spec["canary"]["targetRef"] = {"name": f"{harness.SERVICE}-v2"}
    spec["analysis"]["stepWeights"] = [20, 60]
    spec["analysis"]["threshold"] = 2
    return [vs, dr, canary]


@contextmanager
def _world(
    kube: KubeCluster, namespace: str, workdir: Path, *, bad: tuple[str, ...] = ()
) -> Iterator[tuple[MeshFeed, releases.Served, harness.ControllerProcess]]:
    mesh = LocalMesh(
        service=harness.SERVICE,
        versions=[VersionSpec(v, error_rate=0.5 if v in bad else 0.0) for v in VERSIONS],
        namespace=namespace,
        workdir=workdir / "mesh",
        rate=40.0,
        instances_per_version=1,
    )
    with mesh:
        feed = MeshFeed(harness.admin_rest(kube), mesh, namespace).start()
        served = releases.Served(mesh, namespace).start()
        releases.bind_operator(kube, namespace)
        for version in VERSIONS:
            releases.create_ready(kube, namespace, version)
        harness.apply(kube, _canary(namespace))
        controller = harness.ControllerProcess(
            kube, workdir, mesh.prometheus_url, envoy_admin=mesh.admin_url
        ).start()
        try:
            yield feed, served, controller
        finally:
            controller.stop()
            served.stop()
            feed.stop()


def _wait(kube: KubeCluster, namespace: str, controller: harness.ControllerProcess) -> int:
    code, output = releases.cli(kube, namespace, "wait", harness.SERVICE, "--timeout", "3m")
    print(output)
    assert "Traceback" not in output, output + controller.log_tail()
    return code


def _gitops_release(kube: KubeCluster, namespace: str, version: str) -> None:
    """The next release as a commit makes it: only spec.canary changes, then kubectl apply."""
    canary = harness.canary(kube, namespace)
    body = {
        "apiVersion": canary["apiVersion"],
        "kind": "Canary",
        "metadata": {"name": harness.SERVICE, "namespace": namespace},
        "spec": canary["spec"],
    }
    body["spec"]["canary"] = {
        "subset": version,
        "labels": {"version": version},
        "targetRef": {"name": f"{harness.SERVICE}-{version}"},
    }
    harness.apply(kube, [body])


def test_three_releases_in_a_row_and_a_retired_subset_never_gets_traffic_back(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    """v1 -> v2 (the first apply), -> v3 (`canary release`), -> v4 (a GitOps change of
    spec.canary alone), each awaited by `canary wait` with exit 0. From the start of each
    release, the subsets retired before it get no weight in what Envoy serves and answer no
    request."""
    with _world(kube_cluster, kube_namespace, tmp_path) as (_feed, served, controller):
        assert _wait(kube_cluster, kube_namespace, controller) == 0
        assert harness.status(kube_cluster, kube_namespace)["stableSubset"] == "v2"
        retired: list[str] = ["v1"]
        for version, how in (("v3", "cli"), ("v4", "gitops")):
            started, second = time.monotonic(), served.load_second() + 1
            if how == "cli":
                code, output = releases.cli(
                    kube_cluster, kube_namespace, "release", harness.SERVICE,
                    "--to", version, "--target", f"{harness.SERVICE}-{version}",
                )  # fmt: skip
                assert code == 0, output
            else:
                _gitops_release(kube_cluster, kube_namespace, version)
            assert _wait(kube_cluster, kube_namespace, controller) == 0, controller.log_tail()
            final = harness.status(kube_cluster, kube_namespace)
            assert (final["phase"], final["stableSubset"]) == ("Succeeded", version)
            for old in retired:
                assert served.envoy_gave(old, started) == [], (old, version)
                assert served.answered(old, second) == 0, (old, version)
            # The release retired the subset that was stable before it.
            retired.append(VERSIONS[VERSIONS.index(version) - 1])
        harness.wait_for(
            "Envoy to serve v4 alone",
            lambda: None if served.samples and served.samples[-1][1] == {"v4": 100} else "not yet",
            timeout=15,
        )
        vs = harness.get(
            kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
        )
        assert {k: v for k, v in harness.route_weights(vs).items() if v} == {"v4": 100}


def test_a_bad_release_fails_its_wait_and_traffic_stays_on_the_stable_subset(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    with _world(kube_cluster, kube_namespace, tmp_path, bad=("v3",)) as (_feed, served, ctl):
        assert _wait(kube_cluster, kube_namespace, ctl) == 0
        started, second = time.monotonic(), served.load_second() + 1
        code, output = releases.cli(
            kube_cluster, kube_namespace, "release", harness.SERVICE,
            "--to", "v3", "--target", f"{harness.SERVICE}-v3",
        )  # fmt: skip
        assert code == 0, output
        assert _wait(kube_cluster, kube_namespace, ctl) == 1
        final = harness.status(kube_cluster, kube_namespace)
        assert (final["phase"], final["stableSubset"]) == ("Failed", "v2")
        harness.wait_for(
            "Envoy to serve v2 alone",
            lambda: None if served.samples and served.samples[-1][1] == {"v2": 100} else "not yet",
            timeout=15,
        )
        assert served.envoy_gave("v1", started) == []
        assert served.answered("v1", second) == 0
        explained = releases.cli(kube_cluster, kube_namespace, "explain", harness.SERVICE)[1]
        assert "request-success-rate" in explained, explained


def test_a_new_image_mid_rollout_starts_over_from_the_first_step(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    with _world(kube_cluster, kube_namespace, tmp_path) as (feed, _served, ctl):
        trace = harness.Trace()
        first = harness.follow(
            kube_cluster, kube_namespace,
            lambda s: s.get("phase") == "Progressing" and s.get("canaryWeight") == 60,
            timeout=90, trace=trace, controller=ctl,
        )  # fmt: skip
        before = first["targetRevision"]
        releases.new_image(kube_cluster, kube_namespace, "v2", "demo:v2-fixed")
        restarted = harness.follow(
            kube_cluster, kube_namespace,
            lambda s: s.get("targetRevision") not in (None, before),
            timeout=30, trace=trace, controller=ctl,
        )  # fmt: skip
        assert restarted["canaryWeight"] == 0
        # The new pods are not ready yet: the first step waits for them, tick after tick.
        ticked = ctl.ticks()
        harness.wait_for(
            "the controller to look a few more times",
            lambda: None if ctl.ticks() >= ticked + 3 else f"{ctl.ticks() - ticked} ticks",
            timeout=30,
        )
        assert harness.status(kube_cluster, kube_namespace)["canaryWeight"] == 0
        releases.make_ready(kube_cluster, kube_namespace, "v2")
        assert _wait(kube_cluster, kube_namespace, ctl) == 0
        # Every split the API server held, in watch order: the first rollout reached 60, went
        # back to 0 for the new pods, and walked every step again.
        assert feed.canary_weights() == [0, 20, 60, 0, 20, 60, 100], feed.splits
        reasons = [e.get("reason") for e in harness.events(kube_cluster, kube_namespace)]
        assert "RolloutRestarted" in reasons, reasons
        restarts = [
            e.get("message", "")
            for e in harness.events(kube_cluster, kube_namespace)
            if e.get("reason") == "RolloutRestarted"
        ]
        assert any("a new pod template in Deployment demo-v2" in m for m in restarts), restarts


def test_abort_promote_and_retry_from_the_cli(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    """abort is back at 100% stable in Envoy within a tick plus propagation; retry starts the
    failed rollout over; promote finishes it without waiting out its steps."""
    with _world(kube_cluster, kube_namespace, tmp_path) as (_feed, served, ctl):
        harness.follow(
            kube_cluster, kube_namespace,
            lambda s: s.get("phase") == "Progressing" and s.get("stepStartedAt"),
            timeout=60, controller=ctl,
        )  # fmt: skip
        asked = time.monotonic()
        code, output = releases.cli(kube_cluster, kube_namespace, "abort", harness.SERVICE)
        assert code == 0, output
        harness.wait_for(
            "Envoy to serve v1 alone",
            lambda: None if served.samples and served.samples[-1][1] == {"v1": 100} else "not yet",
            timeout=15,
        )
        back = [at for at, split in served.samples if at >= asked and split == {"v1": 100}]
        seconds = back[0] - asked
        print(f"abort: 100% stable in Envoy {seconds:.2f}s after `canary abort` was run")
        # The CLI's own round trip (write, controller tick, answer) is inside this figure.
        assert seconds < 5, seconds
        assert _wait(kube_cluster, kube_namespace, ctl) == 1
        final = harness.status(kube_cluster, kube_namespace)
        assert final["lastCommand"]["verb"] == "abort"

        code, output = releases.cli(kube_cluster, kube_namespace, "retry", harness.SERVICE)
        assert code == 0, output
        harness.follow(
            kube_cluster, kube_namespace,
            lambda s: s.get("phase") == "Progressing" and s.get("stepStartedAt"),
            timeout=60, controller=ctl,
        )  # fmt: skip
        code, output = releases.cli(kube_cluster, kube_namespace, "promote", harness.SERVICE)
        assert code == 0, output
        assert _wait(kube_cluster, kube_namespace, ctl) == 0
        final = harness.status(kube_cluster, kube_namespace)
        assert (final["phase"], final["stableSubset"]) == ("Succeeded", "v2")
        conditions = {c["type"]: c for c in final["conditions"]}
        assert conditions["Promoted"]["status"] == "True"
        waited = kube_cluster.kubectl(
            "wait", f"canary/{harness.SERVICE}", "-n", kube_namespace,
            "--for=condition=Promoted", "--timeout=5s",
        )  # fmt: skip
        assert waited.returncode == 0, waited.stderr
