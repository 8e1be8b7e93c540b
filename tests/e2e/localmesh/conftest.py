"""The real binaries, found once: a missing one fails the tests with the way to get it."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.localmesh import envoy, prometheus


@pytest.fixture(scope="session")
def envoy_path() -> Path:
    # EnvoyNotFound propagates, so the test errors with the install hint instead of skipping.
    return envoy.envoy_binary()


@pytest.fixture(scope="session")
def prometheus_path() -> Path:
    return prometheus.prometheus_binary()
