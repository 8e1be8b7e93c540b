"""Where the webhook end-to-end tests find Flagger's load tester.

`tests/loadtester/build` builds it into a cache outside the repository and prints the directory.
`tests/run` runs it before pytest and passes the directory in `CANARY_LOADTESTER_DIR` (or the
build's failure in `CANARY_LOADTESTER_BUILD_ERROR`, so the tests error with it instead of
building a second time); without either, the build runs from here. Anything missing raises
`Missing`: the load tester's tests then error, never skip.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.kubeenv import assets as kube_assets

BUILD_SCRIPT = Path(__file__).with_name("build")
DIR_ENV = "CANARY_LOADTESTER_DIR"
BUILD_ERROR_ENV = "CANARY_LOADTESTER_BUILD_ERROR"
BINARY = "loadtester"

# Measured: a cold build takes about 3 minutes on 2 busy cores; half an hour is a hang.
BUILD_TIMEOUT = 1800.0

# One failure type for every build, so a fixture catches what any of them raises.
Missing = kube_assets.Missing


def loadtester_dir(*, timeout: float = BUILD_TIMEOUT) -> Path:
    """The directory holding `loadtester`, built first when nobody said where."""
    error = os.environ.get(BUILD_ERROR_ENV)
    if error:
        raise Missing(error)
    configured = os.environ.get(DIR_ENV)
    directory = Path(configured) if configured else kube_assets.run_build(BUILD_SCRIPT, timeout)
    if not os.access(directory / BINARY, os.X_OK):
        source = f"${DIR_ENV}" if configured else str(BUILD_SCRIPT)
        raise Missing(
            f"no executable {BINARY} in {directory} (from {source}); build it with {BUILD_SCRIPT}"
        )
    return directory
