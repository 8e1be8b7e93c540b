"""Where the istiod tests find pilot-discovery and Istio's CRDs of the same version.

`tests/istiod/build` builds both into a cache outside the repository and prints the directory.
`tests/run` runs it before pytest and passes the directory in `CANARY_ISTIOD_DIR` (or the build's
failure in `CANARY_ISTIOD_BUILD_ERROR`, so the tests error with it instead of building a second
time); without either, the build runs from here. Anything missing raises `Missing`: the istiod
tests then error, never skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

BUILD_SCRIPT = Path(__file__).with_name("build")
DIR_ENV = "CANARY_ISTIOD_DIR"
BUILD_ERROR_ENV = "CANARY_ISTIOD_BUILD_ERROR"
BINARY = "pilot-discovery"
CRDS = "crd-all.gen.yaml"

# Measured: a cold build takes about 10 minutes on 2 cores; an hour is a hang.
BUILD_TIMEOUT = 3600.0


class Missing(Exception):
    """pilot-discovery could not be built or found; the message says why."""


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
    try:
        result = subprocess.run(
            [str(BUILD_SCRIPT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise Missing(f"{BUILD_SCRIPT} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise Missing(f"cannot run {BUILD_SCRIPT}: {exc}") from exc
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise Missing(
            f"{BUILD_SCRIPT} failed with exit code {result.returncode}; "
            "its output (on stderr, above) says why"
        )
    return Path(lines[-1])
