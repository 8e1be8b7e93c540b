"""Where the pipeline lint tests find actionlint, and the shellcheck it runs on `run:` steps.

`tests/actionlint/build` builds actionlint into a cache outside the repository and prints the
directory; `scripts/install-shellcheck` installs Debian's shellcheck when it is missing and
prints its path. `tests/run` runs both before pytest and passes what they printed in
`CANARY_ACTIONLINT_DIR` and `CANARY_SHELLCHECK` (or a failure in `CANARY_ACTIONLINT_BUILD_ERROR`
or `CANARY_SHELLCHECK_ERROR`, so the tests error with it instead of trying a second time);
without either, they run from here. Anything missing raises `Missing`: the lint tests then
error, never skip. actionlint silently leaves out shellcheck when it finds none, so the tests
always name the shellcheck it must run.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.kubeenv import assets as kube_assets

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = Path(__file__).with_name("build")
DIR_ENV = "CANARY_ACTIONLINT_DIR"
BUILD_ERROR_ENV = "CANARY_ACTIONLINT_BUILD_ERROR"
BINARY = "actionlint"

INSTALL_SHELLCHECK = REPO / "scripts" / "install-shellcheck"
SHELLCHECK_ENV = "CANARY_SHELLCHECK"
SHELLCHECK_ERROR_ENV = "CANARY_SHELLCHECK_ERROR"

# Measured: a cold build (modules downloaded too) takes under a minute on 2 busy cores.
BUILD_TIMEOUT = 900.0
# apt-get update and one small package.
INSTALL_TIMEOUT = 600.0

# One failure type for every build, so a fixture catches what any of them raises.
Missing = kube_assets.Missing


def actionlint_dir(*, timeout: float = BUILD_TIMEOUT) -> Path:
    """The directory holding `actionlint`, built first when nobody said where."""
    return kube_assets.tool_dir(
        BUILD_SCRIPT, binary=BINARY, dir_env=DIR_ENV, error_env=BUILD_ERROR_ENV, timeout=timeout
    )


def shellcheck(*, timeout: float = INSTALL_TIMEOUT) -> Path:
    """The shellcheck binary, installed first (Debian's package) when nobody said where."""
    error = os.environ.get(SHELLCHECK_ERROR_ENV)
    if error:
        raise Missing(error)
    configured = os.environ.get(SHELLCHECK_ENV)
    found = Path(configured) if configured else kube_assets.run_build(INSTALL_SHELLCHECK, timeout)
    if not os.access(found, os.X_OK):
        source = f"${SHELLCHECK_ENV}" if configured else str(INSTALL_SHELLCHECK)
        raise Missing(f"{found} (from {source}) is not an executable shellcheck")
    return found
