"""Weight propagation: from the controller's VirtualService write to Envoy serving the new split,
through real istiod and through the local mesh's own Pilot, side by side in one run.

Through istiod the write is the Kubernetes router's (`KubeRouter.set_weights`, a JSON patch in
the test API server); istiod watches the object, translates it and pushes it over ADS to a stock
Envoy running as a gateway. Through the local Pilot it is the local router's
(`LocalRouter.set_weights`), which writes the state directory and publishes the xDS files. The
clock stops when the Envoy's config_dump shows the new weights on the managed route, the same
check the controller makes before a step's clock starts (`EnvoyPropagation`). The two paths are
measured alternately, change after change, so load on this shared machine hits both alike.

Target: p99 <= 1 s through istiod. Run:
`.venv/bin/python benchmarks/bench_istiod_propagation.py [--changes 50]`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from canary.adapters.envoy_admin import EnvoyPropagation  # noqa: E402
from canary.adapters.kube.cache import ClusterCache  # noqa: E402
from canary.adapters.kube.rest import DESTINATION_RULE, VIRTUAL_SERVICE, Rest, connect  # noqa: E402
from canary.adapters.kube.router import KubeRouter  # noqa: E402
from canary.demo import scenario  # noqa: E402
from canary.engine.actions import SetWeights  # noqa: E402
from canary.localmesh import procs  # noqa: E402
from canary.localmesh.mesh import LocalMesh, VersionSpec  # noqa: E402
from canary.localmesh.router import LocalRouter  # noqa: E402
from canary.localmesh.store import LocalStore  # noqa: E402
from canary.ports import Router, RouteRef, SubsetRef  # noqa: E402
from tests.istiod import assets as istiod_assets  # noqa: E402
from tests.istiod import run as istio  # noqa: E402
from tests.kubeenv import assets, cluster, crds  # noqa: E402

NAMESPACE = "bench-propagation"
TIMEOUT = 10.0
TARGET_P99 = 1.0


def wait_served(check: Callable[[], bool]) -> float | None:
    """Seconds until `check` holds, polled every 2 ms; None after TIMEOUT."""
    start = time.monotonic()
    for _ in range(int(TIMEOUT / 0.002)):
        if check():
            return time.monotonic() - start
        time.sleep(0.002)
    return None


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def describe(label: str, seconds: list[float], timeouts: int) -> str:
    if not seconds:
        return f"  {label}: no change served within {TIMEOUT:g} s ({timeouts} timeouts)"
    return (
        f"  {label}: median {statistics.median(seconds) * 1000:.1f} ms, "
        f"p99 {quantile(seconds, 0.99) * 1000:.1f} ms, max {max(seconds) * 1000:.1f} ms "
        f"over {len(seconds)} changes ({timeouts} timeouts)"
    )


@dataclass(frozen=True)
class Route:
    """One way a weight change reaches an Envoy: a router, its route, and that Envoy's admin."""

    label: str
    router: Router
    ref: RouteRef
    envoy: EnvoyPropagation
    namespace: str


def measure(paths: list[Route], changes: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    results: dict[str, list[float]] = {path.label: [] for path in paths}
    timeouts = dict.fromkeys(results, 0)
    for change in range(changes):
        weight = (37 * change + 11) % 101
        wanted = {"v1": 100 - weight, "v2": weight}
        step = SetWeights(stable_subset="v1", canary_subset="v2", canary_weight=weight)
        for path in paths:
            started = time.monotonic()
            path.router.set_weights(path.ref, step)
            written = time.monotonic() - started

            def served(path: Route = path, wanted: dict[str, int] = wanted) -> bool:
                return path.envoy.serves(path.namespace, scenario.SERVICE, scenario.ROUTE, wanted)

            waited = wait_served(served)
            if waited is None:
                timeouts[path.label] += 1
            else:
                results[path.label].append(written + waited)
    return results, timeouts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args(argv)
    istiod_dir = istiod_assets.istiod_dir()
    work = Path(tempfile.mkdtemp(prefix="canary-bench-propagation-"))
    with cluster.start(assets.kube_bin_dir()) as kube:
        crds.install(kube, sorted((REPO / "deploy" / "crds").glob("*.yaml")))
        crds.install(kube, [istiod_dir / istiod_assets.CRDS])
        kube.create_namespace(istio.SYSTEM_NAMESPACE)
        kube.create_namespace(NAMESPACE)
        istiod = istio.start(
            istiod_dir / istiod_assets.BINARY, kube.admin_kubeconfig, work / "istiod"
        )
        mesh = LocalMesh(
            service=scenario.SERVICE,
            versions=[VersionSpec("v1"), VersionSpec("v2")],
            workdir=work / "mesh",
            rate=0,
            instances_per_version=1,
        )
        try:
            mesh.start()
            label = {"istio": "gw-bench"}
            port = procs.free_port()
            fqdn = f"{scenario.SERVICE}.{NAMESPACE}.svc.cluster.local"
            vs, dr = scenario.virtual_service(), scenario.destination_rule()
            for body in (vs, dr):
                body["metadata"]["namespace"] = NAMESPACE
            vs["spec"]["hosts"] = [fqdn]
            vs["spec"]["gateways"] = ["gw"]
            dr["spec"]["trafficPolicy"]["tls"] = {"mode": "DISABLE"}
            backends = [
                istio.Backend(i.version, "127.0.0.1", i.listen_port) for i in mesh.instances
            ]
            istio.create(
                kube,
                *istio.service_objects(scenario.SERVICE, NAMESPACE, backends),
                istio.gateway_object("gw", NAMESPACE, selector=label, port=port, hosts=["*"]),
                vs,
                dr,
            )
            gateway = istio.start_gateway(istiod, work / "gateway", name="gw-bench", labels=label)
            rest = Rest(connect(str(kube.admin_kubeconfig)))
            cache = ClusterCache(rest, kinds=(VIRTUAL_SERVICE, DESTINATION_RULE))
            cache.start()
            cache.wait_synced(30)
            kube_router = KubeRouter(rest, cache)
            kube_ref = RouteRef(
                namespace=NAMESPACE, virtual_service=scenario.SERVICE, host=scenario.SERVICE,
                route=scenario.ROUTE, destination_rule=scenario.SERVICE,
                subsets=(
                    SubsetRef("v1", (("version", "v1"),)),
                    SubsetRef("v2", (("version", "v2"),)),
                ),
            )  # fmt: skip
            store = LocalStore(work / "state")
            store.put(scenario.virtual_service())
            store.put(scenario.destination_rule())
            local_router = LocalRouter(store, mesh)
            local_ref = RouteRef(
                namespace=scenario.NAMESPACE, virtual_service=scenario.SERVICE,
                host=scenario.SERVICE, route=scenario.ROUTE,
            )  # fmt: skip
            paths = [
                Route("istiod", kube_router, kube_ref,
                      EnvoyPropagation([gateway.admin_url]), NAMESPACE),
                Route("local Pilot", local_router, local_ref,
                      EnvoyPropagation([mesh.admin_url]), scenario.NAMESPACE),
            ]  # fmt: skip
            results, timeouts = measure(paths, args.changes)
            print(
                f"weight propagation, write to Envoy serving it ({args.changes} changes each, "
                f"alternating):"
            )
            for label_, seconds in results.items():
                print(describe(label_, seconds, timeouts[label_]))
            p99 = quantile(results["istiod"], 0.99) if results["istiod"] else math.inf
            print(f"  istiod p99 {p99 * 1000:.1f} ms (target <= {TARGET_P99 * 1000:.0f} ms)")
            nacks = istiod.nacks()
            print(f"  NACKs seen by istiod: {nacks or 'none'}")
            cache.stop()
            gateway.stop()
        finally:
            mesh.stop()
            istiod.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
