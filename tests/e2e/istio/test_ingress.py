"""Istio as people run it, through the real istiod: an ingress route in the gateway's namespace,
a mesh-wide DestinationRule in the root namespace, and the stable subset on two ports.

The shape (one rollout covers it all, to keep CI time small):

- an ingress gateway Envoy in namespace `edge-*`, the `Gateway` `ingress` there for the
  external host `shop.example.com`, and the VirtualService `storefront` beside it, bound to
  that Gateway and routing to the service `demo` of the app's namespace by its full name;
- the Canary in the app's namespace, naming `virtualServiceNamespace: edge-*` and
  `destinationRuleNamespace: istio-system` (the mesh's root namespace, where a rule applies to
  every proxy; istiod never reads a rule from a namespace that is neither the proxy's, the
  service's nor the root);
- the service with two HTTP ports, the stable subset on both in the managed route (the issue's
  90/90/10 shape, where the canary got 10/190 = 5.3% instead of 10%).

What decides is the requests counted at the gateway Envoy, by the version each answer names
(tests/e2e/answers.py): while each step's clock runs, the canary's share of them must be the
step's share within 3.5 standard deviations of the binomial (no extra slack; 400 answers at
least, 100 requests a second over 8 s steps), which tells 20% from the 11.1% and 50% from the
33.3% that writing 80/80/20 and 50/50/50 would give. The gateway's own weights, as istiod
programmed them, must give the canary exactly its step (whole numbers, no rounding), a
secondary check.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from canary.localmesh import loadgen, procs, prometheus
from tests.e2e import answers
from tests.e2e.istio.conftest import REPO, assert_no_nacks
from tests.e2e.kube import harness
from tests.istiod import run
from tests.kubeenv.cluster import KubeCluster

SERVICE = "demo"
EXTERNAL_HOST = "shop.example.com"
STEPS = (20, 50)
# Requests a second through the gateway: enough that a step's window tells the exact share
# from the old, diluted one.
RATE = 100
SIGMAS = 3.5
# Answers a step's window must hold: at 400, 3.5 sigma is 7 points at 20% and 8.75 at 50%,
# below the 8.9 and 16.7 points the old writing would have missed them by.
MIN_ANSWERS = 400
VERSIONS = {"v1", "v2"}


def _route(fqdn: str) -> list[dict[str, Any]]:
    return [
        {"destination": {"host": fqdn, "subset": "v1", "port": {"number": port}}, "weight": 50}
        for port in (80, 81)
    ]


def _objects(app: str, edge: str, fqdn: str, gateway_port: int) -> list[dict[str, Any]]:
    rule = f"{SERVICE}-{app}"
    gateway = run.gateway_object(
        "ingress", edge, selector={"istio": edge}, port=gateway_port, hosts=[EXTERNAL_HOST]
    )
    virtual_service = {
        "apiVersion": run.NETWORKING,
        "kind": "VirtualService",
        "metadata": {"name": "storefront", "namespace": edge},
        "spec": {
            "hosts": [EXTERNAL_HOST],
            "gateways": ["ingress"],
            "http": [{"name": "primary", "route": _route(fqdn)}],
        },
    }
    destination_rule = {
        "apiVersion": run.NETWORKING,
        "kind": "DestinationRule",
        "metadata": {"name": rule, "namespace": run.SYSTEM_NAMESPACE},
        "spec": {
            "host": fqdn,
            # A stock Envoy has no SDS: no mTLS toward the backends.
            "trafficPolicy": {"tls": {"mode": "DISABLE"}},
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }
    [canary] = [b for b in harness.objects(app, step_seconds=8) if b["kind"] == "Canary"]
    canary["spec"]["service"] = {
        "host": SERVICE,
        "virtualService": "storefront",
        "virtualServiceNamespace": edge,
        "destinationRule": rule,
        "destinationRuleNamespace": run.SYSTEM_NAMESPACE,
    }
    canary["spec"]["analysis"]["stepWeights"] = list(STEPS)
    return [gateway, virtual_service, destination_rule, canary]


def _service(app: str, backends: list[run.Backend]) -> list[dict[str, Any]]:
    """The service on two HTTP ports (80 and 81), both served by every backend."""
    objects = run.service_objects(SERVICE, app, backends, port=80)
    objects[0]["spec"]["ports"].append({"number": 81, "name": "http-alt", "protocol": "HTTP"})
    for entry in objects[1:]:
        entry["spec"]["ports"]["http-alt"] = entry["spec"]["ports"]["http"]
    return objects


@contextlib.contextmanager
def _edge(kube: KubeCluster, istiod: run.Istiod, workdir: Path) -> Iterator[tuple[str, run.Proxy]]:
    """A gateway namespace and the ingress gateway Envoy in it; no NACK may be left at the end."""
    edge = f"edge-{secrets.token_hex(3)}"
    kube.create_namespace(edge)
    proxy = run.start_gateway(
        istiod, workdir / "gateway", name=edge, labels={"istio": edge}, namespace=edge
    )
    try:
        yield edge, proxy
        assert_no_nacks(istiod, proxy)
    finally:
        proxy.stop()
        run.delete_all(kube, edge)
        kube.clear_namespace(edge)


def _exact_in_envoy(proxy: run.Proxy, fqdn: str, canary_weight: int) -> str:
    """Why the gateway's weights for the route do not give the canary exactly its step."""
    splits = proxy.splits(fqdn, "primary")
    for split in splits:
        if split.get("v2", 0) * 100 != canary_weight * sum(split.values()):
            return f"Envoy's weights {split} do not give v2 exactly {canary_weight}%"
    return "" if splits else f"no route to {fqdn} in the gateway"


def _check(counts: Counter[str], canary_weight: int) -> str:
    total = counts["v1"] + counts["v2"]
    if set(counts) - VERSIONS or total < MIN_ANSWERS:
        return f"too few or unknown answers: {counts}"
    p = canary_weight / 100
    bound = SIGMAS * math.sqrt(p * (1 - p) / total)
    share = counts["v2"] / total
    if abs(share - p) > bound:
        return f"v2 answered {share:.1%} of {total}, wanted {canary_weight}% +- {bound:.1%}"
    return ""


def test_an_ingress_route_in_another_namespace_with_two_stable_ports_rolls_out_exactly(
    kube_cluster: KubeCluster,
    istiod: run.Istiod,
    mesh_namespace: str,
    tmp_path: Path,
) -> None:
    app = mesh_namespace
    fqdn = f"{SERVICE}.{app}.svc.cluster.local"
    gateway_port = procs.free_port()
    with (
        _edge(kube_cluster, istiod, tmp_path) as (edge, proxy),
        procs.Supervisor(tmp_path / "world") as supervisor,
    ):
        backends = []
        for version in ("v1", "v2"):
            port = procs.free_port()
            app_process = supervisor.start(
                f"app-{version}",
                [sys.executable, "-m", "canary.localmesh.app", f"--port={port}",
                 f"--version={version}"],
                env={"PYTHONPATH": str(REPO)},
            )  # fmt: skip
            procs.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30.0, process=app_process)
            backends.append(run.Backend(version, "127.0.0.1", port))
        run.create(kube_cluster, *_service(app, backends))
        metrics = prometheus.start_prometheus(
            supervisor,
            targets={
                "gateway": [
                    prometheus.Target(proxy.admin_url.removeprefix("http://"), {"role": "gw"})
                ]
            },
            workdir=tmp_path / "prometheus",
            port=procs.free_port(),
        )
        metrics.wait_targets_up(expected=1)
        bodies = _objects(app, edge, fqdn, gateway_port)
        rule_path = f"{run.collection('DestinationRule', run.SYSTEM_NAMESPACE)}/{SERVICE}-{app}"
        load = loadgen.LoadGenerator(
            f"http://127.0.0.1:{gateway_port}/", rate_per_second=RATE, duration_s=300,
            concurrency=8, host_header=EXTERNAL_HOST,
        )  # fmt: skip
        controller = None
        try:
            harness.apply(kube_cluster, bodies)
            load.start()
            controller = harness.ControllerProcess(
                kube_cluster, tmp_path, metrics.url, envoy_admin=proxy.admin_url,
                leader_election=False,
            ).start()  # fmt: skip
            steps = answers.Steps(load)
            in_envoy: dict[int, str] = {}

            def done(current: dict[str, Any]) -> bool:
                steps.record(current)
                weight = int(current.get("canaryWeight") or 0)
                started = current.get("phase") == "Progressing" and current.get("stepStartedAt")
                if started and weight not in in_envoy:
                    in_envoy[weight] = _exact_in_envoy(proxy, fqdn, weight)
                return current.get("phase") in ("Succeeded", "Failed", "Invalid")

            final = harness.follow(kube_cluster, app, done, timeout=150, controller=controller)
            written = harness.get(
                kube_cluster, "virtualservices.networking.istio.io", edge, "storefront"
            )
        finally:
            load.stop()
            if controller is not None:
                controller.stop()
            kube_cluster.request("DELETE", rule_path)
    assert final["phase"] == "Succeeded", (final, controller.log_tail())
    print(f"\nanswered per step: { {w: dict(steps.counts(w)) for w in sorted(steps.windows)} }")
    for weight in STEPS:
        why = _check(steps.counts(weight), weight)
        assert not why, (weight, why, steps.windows)
        assert not in_envoy.get(weight, "never seen"), (weight, in_envoy)
    # Promoted: everything to v2 on its one destination, the stable ports at 0, all else as
    # written (ports, hosts, the Gateway binding).
    route = written["spec"]["http"][0]["route"]
    assert [(d["destination"]["subset"], d["destination"]["port"]["number"]) for d in route] == [
        ("v1", 80),
        ("v1", 81),
        ("v2", 80),
    ]
    assert [d["weight"] for d in route] == [0, 0, 100]
    assert written["spec"]["hosts"] == [EXTERNAL_HOST]
