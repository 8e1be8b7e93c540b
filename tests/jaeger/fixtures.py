"""A running Jaeger as a fixture, for any test folder (registered in tests/conftest.py).

The binary comes from tests/jaeger/build through `assets` (a missing or failed build makes the
tests that use it error with the reason: they never skip). Jaeger starts once per module, on
free loopback ports, counting span metrics by `DIMENSIONS` besides service, span name, kind and
status; tests tell their spans apart by service name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary.localmesh import jaeger as localjaeger
from canary.localmesh import procs
from tests.jaeger import assets

# The attributes a canary's spans are told apart by: our subset label, and Istio's revision.
DIMENSIONS = ("subset", "istio.canonical_revision")


@pytest.fixture(scope="session")
def jaeger_binary(pytestconfig: pytest.Config) -> Path:
    """Jaeger's binary, built by tests/jaeger/build if need be (its progress shows: minutes)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    uncaptured = (
        contextlib.nullcontext() if capture is None else capture.global_and_fixture_disabled()
    )
    with uncaptured:
        try:
            return assets.jaeger_dir() / assets.BINARY
        except assets.Missing as exc:
            missing = str(exc)
    # Outside the except block, so the report shows the reason and not a chained traceback.
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="module")
def jaeger(
    jaeger_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[localjaeger.JaegerHandle]:
    """Jaeger, ready: `/api/services` answers and the OTLP receiver takes spans."""
    workdir = tmp_path_factory.mktemp("jaeger")
    with procs.Supervisor(workdir) as supervisor:
        handle = localjaeger.start_jaeger(
            supervisor, workdir=workdir, dimensions=DIMENSIONS, binary=jaeger_binary
        )
        try:
            yield handle
        finally:
            localjaeger.stop(handle)
