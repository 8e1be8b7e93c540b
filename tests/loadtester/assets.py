"""Where the webhook end-to-end tests find Flagger's load tester.

`tests/loadtester/build` builds it into a cache outside the repository and prints the directory.
`tests/run` runs it before pytest and passes the directory in `CANARY_LOADTESTER_DIR` (or the
build's failure in `CANARY_LOADTESTER_BUILD_ERROR`, so the tests error with it instead of
building a second time); without either, the build runs from here. Anything missing raises
`Missing`: the load tester's tests then error, never skip.
"""

from __future__ import annotations

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
    return kube_assets.tool_dir(
        BUILD_SCRIPT, binary=BINARY, dir_env=DIR_ENV, error_env=BUILD_ERROR_ENV, timeout=timeout
    )
