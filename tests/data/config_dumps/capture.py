"""Re-captures the config_dumps beside this file from real Envoys: one fed by the local mesh's
Pilot, one gateway and one sidecar fed by istiod. Run from the repository root:

    .venv/bin/python tests/data/config_dumps/capture.py

(with the test API server and istiod built, as `tests/run` builds them). Each Envoy is asked
`/config_dump?resource=dynamic_route_configs`, the request `envoy_admin` makes, once it serves
each split below; the answer is saved whole but for its `last_updated` stamps, which change on
every capture and which nothing reads. The versions of Envoy and istiod go into versions.json.

The VirtualService has two http routes for `demo.capture.svc.cluster.local`: `canary-header`
(two named match blocks, so Envoy gets routes `canary-header.by-header` and
`canary-header.by-cookie`, both to v2 alone) and `primary` (v1/v2 by weight). The local Pilot's
Envoy is also captured before any push (its default route only) and asked for its clusters
instead (`local-pilot-clusters-only`: an answer with no route configuration in it).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from canary.adapters import envoy_admin  # noqa: E402
from canary.localmesh import envoy, pilot, procs  # noqa: E402
from tests.istiod import assets as istiod_assets  # noqa: E402
from tests.istiod import run as istio  # noqa: E402
from tests.kubeenv import assets, cluster, crds  # noqa: E402

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
NAMESPACE = "capture"
SERVICE = "demo"
FQDN = f"{SERVICE}.{NAMESPACE}.svc.cluster.local"
PORT = 80
# Each capture: a file-name suffix and the primary route's weights (v1, v2).
SPLITS = (("90-10", (90, 10)), ("100-0", (100, 0)))
TIMEOUT = 60.0
# Nobody connects to the backends: the routes are what is captured, not traffic.
BACKENDS = [istio.Backend("v1", "127.0.0.1", 9), istio.Backend("v2", "127.0.0.1", 9)]


def virtual_service(v1: int, v2: int, *, gateways: list[str] | None = None) -> Json:
    spec: Json = {
        "hosts": [SERVICE] if gateways is None else [FQDN],
        "http": [
            {
                "name": "canary-header",
                "match": [
                    {"name": "by-header", "headers": {"x-canary": {"exact": "always"}}},
                    {"name": "by-cookie", "headers": {"cookie": {"regex": ".*canary=1.*"}}},
                ],
                "route": [{"destination": {"host": SERVICE, "subset": "v2"}}],
            },
            {
                "name": "primary",
                "route": [
                    {"destination": {"host": SERVICE, "subset": "v1"}, "weight": v1},
                    {"destination": {"host": SERVICE, "subset": "v2"}, "weight": v2},
                ],
            },
        ],
    }
    if gateways is not None:
        spec["gateways"] = gateways
    return {
        "apiVersion": istio.NETWORKING,
        "kind": "VirtualService",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": spec,
    }


def destination_rule(*, tls_off: bool = False) -> Json:
    spec: Json = {
        "host": SERVICE,
        "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2")],
    }
    if tls_off:
        # A stock Envoy has no SDS: no mTLS toward the backends.
        spec["trafficPolicy"] = {"tls": {"mode": "DISABLE"}}
    return {
        "apiVersion": istio.NETWORKING,
        "kind": "DestinationRule",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": spec,
    }


def route_dump(admin_url: str) -> Json:
    url = f"{admin_url}/config_dump?resource=dynamic_route_configs"
    with urllib.request.urlopen(url, timeout=5) as response:
        found: Json = json.loads(response.read())
    return found


def wait_serves(admin_url: str, weights: tuple[int, int]) -> Json:
    """The route dump once Envoy serves `weights` on the primary route (zero weights left out)."""
    wanted = {s: w for s, w in zip(("v1", "v2"), weights, strict=True) if w > 0}
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            dump = route_dump(admin_url)
            if wanted in list(envoy_admin.served_splits(dump, FQDN, "primary")):
                return dump
        time.sleep(0.1)
    raise RuntimeError(f"{admin_url} did not serve {wanted} within {TIMEOUT:g} s")


def save(name: str, dump: Json) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(_trimmed(dump), indent=1, sort_keys=True) + "\n")
    print(f"saved {name}.json")


def _trimmed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _trimmed(v) for k, v in value.items() if k != "last_updated"}
    if isinstance(value, list):
        return [_trimmed(v) for v in value]
    return value


def envoy_version(admin_url: str) -> str:
    with urllib.request.urlopen(f"{admin_url}/server_info", timeout=5) as response:
        return str(json.loads(response.read())["version"])


def capture_local(work: Path) -> str:
    """The local Pilot's Envoy: before any push, then each split."""
    local = pilot.Pilot(
        xds_dir=work / "local-xds",
        listener_port=procs.free_port(),
        workloads=[
            pilot.Workload(
                name=f"{SERVICE}-{b.version}",
                namespace=NAMESPACE,
                host=SERVICE,
                labels={"app": SERVICE, "version": b.version},
                address=b.host,
                port=b.port,
            )
            for b in BACKENDS
        ],
        namespace=NAMESPACE,
        service_port=PORT,
    )
    admin_port = procs.free_port()
    with procs.Supervisor(work / "local") as supervisor:
        handle = envoy.start_envoy(
            supervisor,
            local.bootstrap(admin_port=admin_port),
            name="local-pilot-client",
            admin_port=admin_port,
            workdir=work / "local",
        )
        save("local-pilot-no-push", route_dump(handle.admin_url))
        # What an admin answers that holds no route configuration at all: its clusters.
        with urllib.request.urlopen(
            f"{handle.admin_url}/config_dump?resource=dynamic_active_clusters", timeout=5
        ) as response:
            save("local-pilot-clusters-only", json.loads(response.read()))
        for suffix, weights in SPLITS:
            local.push([virtual_service(*weights)], [destination_rule()])
            save(f"local-pilot-{suffix}", wait_serves(handle.admin_url, weights))
        return envoy_version(handle.admin_url)


@contextlib.contextmanager
def istiod_running(work: Path) -> Iterator[tuple[cluster.KubeCluster, istio.Istiod]]:
    istiod_dir = istiod_assets.istiod_dir()
    with cluster.start(assets.kube_bin_dir()) as kube:
        crds.install(kube, [istiod_dir / istiod_assets.CRDS])
        kube.create_namespace(istio.SYSTEM_NAMESPACE)
        kube.create_namespace(NAMESPACE)
        started = istio.start(istiod_dir / istiod_assets.BINARY, kube.admin_kubeconfig, work)
        try:
            yield kube, started
        finally:
            started.stop()


def capture_istiod(work: Path) -> None:
    """A gateway and a sidecar istiod programs, each split in turn."""
    label = {"istio": "gw-capture"}
    with istiod_running(work / "istiod") as (kube, istiod):
        istio.create(
            kube,
            *istio.service_objects(SERVICE, NAMESPACE, BACKENDS, port=PORT),
            istio.gateway_object("gw", NAMESPACE, selector=label, port=procs.free_port(),
                                 hosts=["*"]),
            istio.sidecar_object(NAMESPACE),
            destination_rule(tls_off=True),
        )  # fmt: skip
        proxies = {
            "istiod-gateway": istio.start_gateway(
                istiod, work / "gateway", name="gw-capture", labels=label
            ),
            "istiod-sidecar": istio.start_sidecar(
                istiod, work / "sidecar", name="client", namespace=NAMESPACE,
                labels={"app": "client"},
            ),
        }  # fmt: skip
        try:
            for suffix, weights in SPLITS:
                istio.replace(kube, virtual_service(*weights, gateways=["gw", "mesh"]))
                for name, proxy in proxies.items():
                    save(f"{name}-{suffix}", wait_serves(proxy.admin_url, weights))
            nacks = istiod.nacks()
            if nacks:
                raise RuntimeError(f"istiod saw NACKs: {nacks}")
        finally:
            for proxy in proxies.values():
                proxy.stop()


def istio_version() -> str:
    """istio.io/istio's version in the build's go.mod: the istiod these dumps come from."""
    for line in (REPO / "tests" / "istiod" / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["istio.io/istio"] and len(parts) > 1:
            return parts[1]
    return "unknown"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="canary-capture-") as folder:
        work = Path(folder)
        version = capture_local(work)
        capture_istiod(work)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    versions = {"envoy": version, "istiod": istio_version(), "canary commit": commit}
    (HERE / "versions.json").write_text(json.dumps(versions, indent=1, sort_keys=True) + "\n")
    print(versions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
