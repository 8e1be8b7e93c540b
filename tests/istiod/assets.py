"""Where the istiod tests find pilot-discovery and Istio's CRDs of the same version.

`tests/istiod/build` builds both into a cache outside the repository and prints the directory.
`tests/run` runs it before pytest and passes the directory in `CANARY_ISTIOD_DIR` (or the build's
failure in `CANARY_ISTIOD_BUILD_ERROR`, so the tests error with it instead of building a second
time); without either, the build runs from here. Anything missing raises `Missing`: the istiod
tests then error, never skip.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.kubeenv import assets as kube_assets

BUILD_SCRIPT = Path(__file__).with_name("build")
DIR_ENV = "CANARY_ISTIOD_DIR"
BUILD_ERROR_ENV = "CANARY_ISTIOD_BUILD_ERROR"
BINARY = "pilot-discovery"
CRDS = "crd-all.gen.yaml"

# Measured: a cold build takes about 10 minutes on 2 cores; an hour is a hang.
BUILD_TIMEOUT = 3600.0


# One failure type for both builds, so a fixture catches what either raises.
Missing = kube_assets.Missing


def istiod_dir(*, timeout: float = BUILD_TIMEOUT) -> Path:
    """The directory holding `pilot-discovery` and `crd-all.gen.yaml`, built if need be."""
    error = os.environ.get(BUILD_ERROR_ENV)
    if error:
        raise Missing(error)
    configured = os.environ.get(DIR_ENV)
    directory = Path(configured) if configured else _build(timeout)
    problems = []
    if not os.access(directory / BINARY, os.X_OK):
        problems.append(f"no executable {BINARY}")
    if not (directory / CRDS).is_file():
        problems.append(f"no {CRDS}")
    if problems:
        source = f"${DIR_ENV}" if configured else str(BUILD_SCRIPT)
        raise Missing(
            f"{' and '.join(problems)} in {directory} (from {source}); build with {BUILD_SCRIPT}"
        )
    return directory


def _build(timeout: float) -> Path:
    return kube_assets.run_build(BUILD_SCRIPT, timeout)
