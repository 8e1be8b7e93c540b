"""A real API server for the session, with our CRDs, Istio's and deploy/rbac.yaml installed.

It lives here, above tests/e2e/kube and tests/e2e/istio, so both share one server when they
run together; the istiod fixtures add the rest of Istio's CRDs to it.

The server starts once per test run (about 10 s with the CRDs) and each test gets a namespace
of its own, since namespaces never finish deleting without a controller-manager. A missing
binary or a failed build makes every test here error with the reason: these tests never skip.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.kubeenv import assets, cluster, crds

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RBAC = DEPLOY / "rbac.yaml"

_CLUSTER = pytest.StashKey[cluster.KubeCluster]()


@pytest.fixture(scope="session")
def kube_bin_dir(pytestconfig: pytest.Config) -> Path:
    """The directory of kube-apiserver and etcd, built by tests/kubeenv/build if need be."""
    return built(pytestconfig, assets.kube_bin_dir)


@pytest.fixture(scope="session")
def kube_cluster(pytestconfig: pytest.Config, kube_bin_dir: Path) -> Iterator[cluster.KubeCluster]:
    """The API server, ready: CRDs Established and discoverable, the controller's RBAC bound."""
    istio_crds = _needed(assets.istio_crds)
    with cluster.start(kube_bin_dir) as kube:
        pytestconfig.stash[_CLUSTER] = kube
        try:
            crds.install(kube, sorted((DEPLOY / "crds").glob("*.yaml")))
            # The groups canary reads (PeerAuthentication for preflight's mTLS item) and
            # patches; Istio's other groups would cost seconds more.
            crds.install(kube, [istio_crds], groups={"networking.istio.io", "security.istio.io"})
            bind_controller(kube)
            yield kube
        finally:
            del pytestconfig.stash[_CLUSTER]


@pytest.fixture
def kube_namespace(
    kube_cluster: cluster.KubeCluster, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace named after the test; what the test made in it is deleted afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    kube_cluster.create_namespace(name)
    yield name
    kube_cluster.clear_namespace(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    kube = item.config.stash.get(_CLUSTER, None)
    if report.failed and kube is not None:
        report.sections.append(("kube-apiserver log (last 40 lines)", kube.log_tail(40)))
    return report


def built(pytestconfig: pytest.Config, get: Callable[[], Path]) -> Path:
    """What a build script of tests/ makes (`get` runs it when nobody did), or the test errors.

    A cold build takes many minutes: its progress shows instead of being captured.
    """
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    uncaptured = (
        contextlib.nullcontext() if capture is None else capture.global_and_fixture_disabled()
    )
    with uncaptured:
        return _needed(get)


def _needed(get: Callable[[], Path]) -> Path:
    """What `get` builds or fetches; if it cannot, the test errors saying why (never skips)."""
    try:
        return get()
    except assets.Missing as exc:
        missing = str(exc)
    # Outside the except block, so the report shows the reason and not a chained traceback.
    pytest.fail(missing, pytrace=False)


def bind_controller(kube: cluster.KubeCluster) -> None:
    """Applies deploy/rbac.yaml and waits until RBAC lets the controller list Canaries.

    The authorizer reads bindings from an informer, so a binding takes effect a moment after
    it is stored; a test must not see that gap.
    """
    if not RBAC.is_file():
        # Tests that need the controller's rights fail on their own, saying it is missing.
        return
    kube.kubectl("apply", "--filename", str(RBAC), check=True)
    cluster.poll(
        f"{RBAC.name} to let {cluster.CONTROLLER_USER} list canaries",
        lambda: None if kube.can_i("list", "canaries.canary.dev") else "not allowed yet",
        timeout=30.0,
        interval=0.5,
    )
