"""Gate services for the webhook end-to-end tests: Flagger's load tester and tests/gates.py.

The load tester is built by tests/loadtester/build (a missing or failed build makes its tests
error with the reason: they never skip) and runs once per module on a free loopback port. When
a test that used it fails, the report carries the tail of its log.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import built
from tests.gates import gate_service  # noqa: F401 - a fixture, found by its name
from tests.loadtester import assets, run

_LOADTESTER = pytest.StashKey[run.LoadTester]()


@pytest.fixture(scope="session")
def loadtester_dir(pytestconfig: pytest.Config) -> Path:
    """The directory of Flagger's load tester, built by tests/loadtester/build if need be."""
    return built(pytestconfig, assets.loadtester_dir)


@pytest.fixture(scope="module")
def loadtester(
    pytestconfig: pytest.Config, loadtester_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[run.LoadTester]:
    """Flagger's load tester, ready (`/healthz` is 200), with a fresh (all closed) gate store."""
    with run.running(
        loadtester_dir / assets.BINARY, tmp_path_factory.mktemp("loadtester")
    ) as started:
        pytestconfig.stash[_LOADTESTER] = started
        try:
            yield started
        finally:
            del pytestconfig.stash[_LOADTESTER]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    started = item.config.stash.get(_LOADTESTER, None)
    if report.failed and started is not None and "loadtester" in getattr(item, "fixturenames", ()):
        report.sections.append(("load tester log (last 30 lines)", started.process.log_tail(30)))
    return report
