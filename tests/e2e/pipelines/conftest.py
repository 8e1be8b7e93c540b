"""The linters of deploy/pipelines/: actionlint (built by tests/actionlint/build) and the
shellcheck it runs on `run:` steps (Debian's, from scripts/install-shellcheck). A missing or
failed build or install makes the lint tests error with the reason: they never skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.actionlint import assets
from tests.e2e.conftest import built


@pytest.fixture(scope="session")
def actionlint(pytestconfig: pytest.Config) -> Path:
    return built(pytestconfig, assets.actionlint_dir) / assets.BINARY


@pytest.fixture(scope="session")
def shellcheck(pytestconfig: pytest.Config) -> Path:
    return built(pytestconfig, assets.shellcheck)
