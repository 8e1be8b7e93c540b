"""The controller through real Istio: its VirtualService weights reach Envoy by istiod.

`canary run` patches the VirtualService in the API server, istiod translates it, and a stock
Envoy (a gateway istiod feeds over ADS) serves it: the path a user's cluster takes. The step's
clock starts when that Envoy's config_dump shows the split (`--envoy-admin`), Prometheus scrapes
that Envoy, and the load goes through it. The `gateway` fixture fails a test whose config any
proxy rejected (a NACK), by name. What decides a test's traffic claims is counted from the
load's answers, by the version each names (tests/e2e/answers.py); the product's own reader of
Envoy's config (`envoy_admin`) is a secondary check.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.adapters.envoy_admin import EnvoyPropagation
from canary.demo import scenario
from canary.localmesh import loadgen, procs, prometheus
from tests.e2e import answers
from tests.e2e.istio.conftest import REPO, GatewayUnderTest
from tests.e2e.kube import harness
from tests.istiod import run
from tests.kubeenv.cluster import KubeCluster

SERVICE = "demo"
VERSIONS = {"v1", "v2"}


@dataclass
class World:
    namespace: str
    fqdn: str
    prometheus_url: str
    gateway: GatewayUnderTest
    load: loadgen.LoadGenerator


def _objects(namespace: str, fqdn: str, *, step_seconds: int = 6) -> list[dict[str, Any]]:
    vs, dr, canary = harness.objects(namespace, step_seconds=step_seconds)
    vs["spec"]["hosts"] = [fqdn]
    vs["spec"]["gateways"] = ["gw"]
    # A stock Envoy has no SDS: no mTLS toward the backends.
    dr["spec"]["trafficPolicy"]["tls"] = {"mode": "DISABLE"}
    return [vs, dr, canary]


@contextlib.contextmanager
def world(
    kube: KubeCluster,
    namespace: str,
    gateway: GatewayUnderTest,
    workdir: Path,
    *,
    error_rate: float,
) -> Iterator[World]:
    """Two backends per version behind a ServiceEntry, Prometheus on the gateway, and load."""
    fqdn = f"{SERVICE}.{namespace}.svc.cluster.local"
    with procs.Supervisor(workdir) as supervisor:
        backends = []
        for version, rate in (("v1", 0.0), ("v2", error_rate)):
            for index in range(2):
                port = procs.free_port()
                app = supervisor.start(
                    f"app-{version}-{index}",
                    [sys.executable, "-m", "canary.localmesh.app", f"--port={port}",
                     f"--version={version}", f"--error-rate={rate}"],
                    env={"PYTHONPATH": str(REPO)},
                )  # fmt: skip
                procs.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30.0, process=app)
                backends.append(run.Backend(version, "127.0.0.1", port))
        run.create(kube, *run.service_objects(SERVICE, namespace, backends))
        admin = gateway.proxy.admin_url.removeprefix("http://")
        metrics = prometheus.start_prometheus(
            supervisor,
            targets={"gateway": [prometheus.Target(admin, {"role": "gateway"})]},
            workdir=workdir / "prometheus",
            port=procs.free_port(),
        )
        metrics.wait_targets_up(expected=1)
        load = loadgen.LoadGenerator(
            f"http://127.0.0.1:{gateway.port}/", rate_per_second=40, duration_s=300,
            host_header=fqdn,
        ).start()  # fmt: skip
        try:
            yield World(namespace, fqdn, metrics.url, gateway, load)
        finally:
            load.stop()


def _serves(gateway: GatewayUnderTest, namespace: str, canary_weight: int) -> bool:
    return EnvoyPropagation([gateway.proxy.admin_url]).serves(
        namespace, SERVICE, "primary", {"v1": 100 - canary_weight, "v2": canary_weight}
    )


def _controller(kube: KubeCluster, here: World, workdir: Path) -> harness.ControllerProcess:
    return harness.ControllerProcess(
        kube, workdir, here.prometheus_url, envoy_admin=here.gateway.proxy.admin_url,
        leader_election=False,
    ).start()  # fmt: skip


def _only(load: loadgen.LoadGenerator, version: str, since: int) -> None:
    """Every request due from load second `since` on was answered by `version` (80 at least)."""
    counts = answers.wait_answered(load, since, at_least=80, timeout=20)
    why = answers.check_share(counts, version, 100, versions=VERSIONS)
    assert not why, (why, counts)


def test_a_canary_is_promoted_through_istiod_step_by_step(
    kube_cluster: KubeCluster, mesh_namespace: str, gateway: GatewayUnderTest, tmp_path: Path
) -> None:
    with world(kube_cluster, mesh_namespace, gateway, tmp_path / "world", error_rate=0.0) as here:
        harness.apply(kube_cluster, _objects(mesh_namespace, here.fqdn))
        controller = _controller(kube_cluster, here, tmp_path)
        try:
            served: dict[int, bool] = {}
            steps = answers.Steps(here.load)

            def done(current: dict[str, Any]) -> bool:
                steps.record(current)
                weight = int(current.get("canaryWeight") or 0)
                started = current.get("phase") == "Progressing" and current.get("stepStartedAt")
                if started and not served.get(weight):
                    served[weight] = _serves(gateway, mesh_namespace, weight)
                return current.get("phase") in ("Succeeded", "Failed")

            final = harness.follow(
                kube_cluster, mesh_namespace, done, timeout=150, controller=controller
            )
            promoted = answers.second(here.load) + 1
            if final["phase"] == "Succeeded":
                _only(here.load, "v2", promoted)
        finally:
            controller.stop()
    assert final["phase"] == "Succeeded", controller.log_tail()
    # Before the first step, preflight read the istiod-programmed gateway's routes.
    checked = next(c for c in final["conditions"] if c["type"] == "Preflight")
    assert checked["status"] == "True", checked
    assert "✓ callers' proxies: 1 proxy(ies) serve {v1: 100}" in checked["message"], checked
    # What decides: while each step's clock ran, the gateway's users got v2 in the step's share
    # (Envoy picks per request at random, so within a binomial bound), and only v2 once promoted.
    print(f"\nanswered per step: { {w: dict(steps.counts(w)) for w in sorted(steps.windows)} }")
    for weight in (10, 25, 50):
        counts = steps.counts(weight)
        assert sum(counts.values()) >= 60, (weight, counts, steps.windows)
        why = answers.check_share(counts, "v2", weight, versions=VERSIONS)
        assert not why, (weight, why, steps.windows)
    # Each step's clock started only once istiod had programmed Envoy with its split (the
    # product's own reader, a secondary check).
    assert all(served.get(weight) for weight in (10, 25, 50)), served
    assert _serves(gateway, mesh_namespace, 100)


def test_a_bad_canary_is_rolled_back_on_the_istiod_fed_envoys_metrics(
    kube_cluster: KubeCluster, mesh_namespace: str, gateway: GatewayUnderTest, tmp_path: Path
) -> None:
    with world(kube_cluster, mesh_namespace, gateway, tmp_path / "world", error_rate=0.5) as here:
        harness.apply(kube_cluster, _objects(mesh_namespace, here.fqdn))
        controller = _controller(kube_cluster, here, tmp_path)
        try:
            final = harness.follow(
                kube_cluster, mesh_namespace, lambda c: c.get("phase") in ("Succeeded", "Failed"),
                timeout=120, controller=controller,
            )  # fmt: skip
        finally:
            controller.stop()
        rolled_back = answers.second(here.load) + 1
        assert final["phase"] == "Failed", controller.log_tail()
        failed = [c for c in final.get("checks") or [] if c.get("passed") is False]
        assert any(c["name"] == "request-success-rate" for c in failed), final
        # The query that judged it read the gateway's own cluster stats, as istiod named them.
        assert any("outbound" in c.get("query", "") for c in failed), failed
        # The canary really got users before it was judged, and none after the rollback.
        assert answers.answered(here.load, 0, rolled_back)["v2"] > 0
        _only(here.load, "v1", rolled_back)
        assert _serves(gateway, mesh_namespace, 0)


def test_a_destination_rule_that_does_not_fit_is_invalid_before_any_weight_is_written(
    kube_cluster: KubeCluster, mesh_namespace: str, gateway: GatewayUnderTest, tmp_path: Path
) -> None:
    fqdn = f"{SERVICE}.{mesh_namespace}.svc.cluster.local"
    vs, dr, canary = _objects(mesh_namespace, fqdn)
    run.create(
        kube_cluster, *run.service_objects(SERVICE, mesh_namespace, [("v1", "127.0.0.1", 1)])
    )
    # No v2 subset, and the Canary gives it no labels to add it by.
    dr["spec"]["subsets"] = [dr["spec"]["subsets"][0]]
    canary["spec"]["canary"] = {"subset": "v2"}
    other_host = json.loads(json.dumps(canary))
    other_host["metadata"]["name"] = "other-host"
    other_host["spec"]["service"]["destinationRule"] = "elsewhere"
    elsewhere = json.loads(json.dumps(dr))
    elsewhere["metadata"]["name"] = "elsewhere"
    elsewhere["spec"]["host"] = "reviews"
    harness.apply(kube_cluster, [vs, dr, elsewhere])
    version = harness.get(
        kube_cluster, "virtualservices.networking.istio.io", mesh_namespace, SERVICE
    )["metadata"]["resourceVersion"]
    harness.apply(kube_cluster, [canary, other_host])
    controller = harness.ControllerProcess(
        kube_cluster, tmp_path, "http://127.0.0.1:1", leader_election=False
    ).start()
    try:
        for name, words in (
            (SERVICE, "subset 'v2' is not defined"),
            ("other-host", "is for host 'reviews'"),
        ):

            def invalid(name: str = name) -> str | None:
                phase = harness.status(kube_cluster, mesh_namespace, name).get("phase")
                return None if phase == "Invalid" else f"{name}: {phase}"

            harness.wait_for(f"{name} to be Invalid", invalid, timeout=30)
            conditions = harness.status(kube_cluster, mesh_namespace, name)["conditions"]
            message = next(c["message"] for c in conditions if c["reason"] == "InvalidSpec")
            assert words in message, message
    finally:
        controller.stop()
    after = harness.get(
        kube_cluster, "virtualservices.networking.istio.io", mesh_namespace, SERVICE
    )
    assert after["metadata"]["resourceVersion"] == version
    assert after["spec"]["http"][0]["name"] == scenario.ROUTE
