"""A real istiod for the session, on the session's API server, and Envoys it programs per test.

The API server is the session's (`kube_cluster`, `kube_namespace` in tests/e2e/conftest.py,
shared with the kube tests). The `istiod` fixture adds all 15 Istio CRDs from the istiod build
(`crd-all.gen.yaml` of the same istio.io/istio version, byte for byte istio.io/api v1.31.4's
file, whose networking CRDs the session installed already) and the `istio-system` namespace.

A missing or failed build makes every test here error with the reason: these tests never skip.
When a test fails, the report carries the tail of istiod's log and what istiod says was NACKed.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from canary.localmesh import procs
from tests.e2e.conftest import built
from tests.istiod import assets, run
from tests.kubeenv import cluster, crds

REPO = Path(__file__).resolve().parents[3]

_ISTIOD = pytest.StashKey[run.Istiod]()


@pytest.fixture(scope="session")
def istiod_dir(pytestconfig: pytest.Config) -> Path:
    """The directory of pilot-discovery and crd-all.gen.yaml, built by tests/istiod/build."""
    return built(pytestconfig, assets.istiod_dir)


@pytest.fixture(scope="session")
def istiod(
    pytestconfig: pytest.Config,
    istiod_dir: Path,
    kube_cluster: cluster.KubeCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[run.Istiod]:
    """istiod, ready (`/ready` is 200), watching the session's API server.

    Its working directory (log, mesh config) is a pytest temporary directory, kept after the run.
    """
    # The session's API server has Istio's networking CRDs; istiod watches the other groups
    # too, and this build's own CRDs are the ones it was made for.
    crds.install(kube_cluster, [istiod_dir / assets.CRDS])
    if kube_cluster.request("GET", f"/api/v1/namespaces/{run.SYSTEM_NAMESPACE}")[0] == 404:
        kube_cluster.create_namespace(run.SYSTEM_NAMESPACE)
    started = run.start(
        istiod_dir / assets.BINARY,
        kube_cluster.admin_kubeconfig,
        tmp_path_factory.mktemp("istiod"),
    )
    pytestconfig.stash[_ISTIOD] = started
    try:
        yield started
    finally:
        del pytestconfig.stash[_ISTIOD]
        started.stop()


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[run.Backend]]:
    """One demo app process per version (v1, v2), each answering `{"version": "vN"}`."""
    workdir = tmp_path_factory.mktemp("backends")
    with procs.Supervisor(workdir) as supervisor:
        found = []
        for version in ("v1", "v2"):
            port = procs.free_port()
            process = supervisor.start(
                f"app-{version}",
                [
                    sys.executable,
                    "-m",
                    "canary.localmesh.app",
                    f"--port={port}",
                    f"--version={version}",
                ],
                env={"PYTHONPATH": str(REPO)},
            )
            procs.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30.0, process=process)
            found.append(run.Backend(version, "127.0.0.1", port))
        yield found


@pytest.fixture
def mesh_namespace(
    kube_cluster: cluster.KubeCluster, kube_namespace: str, istiod: run.Istiod
) -> Iterator[str]:
    """A fresh namespace; the Istio objects made in it are deleted afterwards, so istiod (which
    watches every namespace) does not carry one test's services into the next."""
    yield kube_namespace
    run.delete_all(kube_cluster, kube_namespace)


@dataclass(frozen=True)
class GatewayUnderTest:
    """A gateway Envoy, the Gateway object selecting it, and its HTTP listener's port."""

    proxy: run.Proxy
    name: str  # of the Gateway object, in `namespace`
    namespace: str
    port: int

    def get(self, path: str = "/", *, host: str, **headers: str) -> tuple[int, str]:
        return run.get(self.port, path, host=host, headers=headers)


@pytest.fixture
def gateway(
    istiod: run.Istiod,
    kube_cluster: cluster.KubeCluster,
    mesh_namespace: str,
    tmp_path: Path,
) -> Iterator[GatewayUnderTest]:
    """A Gateway `gw` in the test's namespace (HTTP, hosts `*`, bound to 127.0.0.1 on a free
    port, selecting a label of its own) and the gateway Envoy it selects, LIVE.

    At teardown, any config the Envoy rejected fails the test (an error in its teardown).
    """
    label = {"istio": f"gw-{secrets.token_hex(4)}"}
    port = procs.free_port()
    run.create(
        kube_cluster,
        run.gateway_object("gw", mesh_namespace, selector=label, port=port, hosts=["*"]),
    )
    proxy = run.start_gateway(istiod, tmp_path / "gateway", name=label["istio"], labels=label)
    try:
        yield GatewayUnderTest(proxy, "gw", mesh_namespace, port)
        assert_no_nacks(istiod, proxy)
    finally:
        proxy.stop()


def assert_no_nacks(istiod: run.Istiod, proxy: run.Proxy) -> None:
    """Neither istiod (`/debug/syncz`) nor Envoy (`update_rejected` stats) saw a NACK."""
    rejected = istiod.nacks().get(proxy.xds_id)
    counted = proxy.rejected_updates()
    assert not rejected, f"istiod saw NACKs from {proxy.node_id}: {rejected}"
    assert not counted, f"Envoy {proxy.node_id} rejected updates: {counted}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report gets istiod's log tail and its NACKs (tests/e2e/conftest.py adds
    the API server's)."""
    report = yield
    if not report.failed:
        return report
    started = item.config.stash.get(_ISTIOD, None)
    if started is not None:
        report.sections.append(
            (f"istiod log {started.log_path} (last 60 lines)", started.log_tail(60))
        )
        try:
            nacks = started.nacks()
        except OSError as exc:
            nacks = {"(syncz unreadable)": {"error": str(exc)}}
        report.sections.append(("istiod /debug/syncz NACKs", repr(nacks)))
    return report
