"""Where the trace tests find Jaeger.

`tests/jaeger/build` builds it into a cache outside the repository and prints the directory.
`tests/run` runs it before pytest and passes the directory in `CANARY_JAEGER_DIR` (or the
build's failure in `CANARY_JAEGER_BUILD_ERROR`, so the tests error with it instead of building
a second time); without either, the build runs from here. Anything missing raises `Missing`:
Jaeger's tests then error, never skip.
"""

from __future__ import annotations

from pathlib import Path

from tests.kubeenv import assets as kube_assets

BUILD_SCRIPT = Path(__file__).with_name("build")
DIR_ENV = "CANARY_JAEGER_DIR"
BUILD_ERROR_ENV = "CANARY_JAEGER_BUILD_ERROR"
BINARY = "jaeger"

# Measured: a cold build took 8 minutes on 2 busy cores (modules downloaded); half an hour is a
# hang.
BUILD_TIMEOUT = 1800.0

# One failure type for every build, so a fixture catches what any of them raises.
Missing = kube_assets.Missing


def jaeger_dir(*, timeout: float = BUILD_TIMEOUT) -> Path:
    """The directory holding `jaeger`, built first when nobody said where."""
    return kube_assets.tool_dir(
        BUILD_SCRIPT, binary=BINARY, dir_env=DIR_ENV, error_env=BUILD_ERROR_ENV, timeout=timeout
    )
