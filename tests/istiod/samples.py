"""Where the tests find Istio's own files: the istio.io/istio module in Go's module cache.

The module is the one `tests/istiod/go.mod` pins (the istiod build's own source), located by
`tests/istiod/source` through `go list -m`, and downloaded by it when absent, so a clone with
nothing beside it reads the same Bookinfo samples the istiod tests run against. `tests/run`
runs the script before pytest collects and passes the directory in `CANARY_ISTIO_SOURCE` (or its
failure in `CANARY_ISTIO_SOURCE_ERROR`); without either, the script runs from here, once.
Anything missing fails the test that asked, with the reason: never a skip.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

SOURCE_SCRIPT = Path(__file__).with_name("source")
DIR_ENV = "CANARY_ISTIO_SOURCE"
ERROR_ENV = "CANARY_ISTIO_SOURCE_ERROR"
# A cold download of the module is about 40 MB; warm, `go list -m` answers at once.
TIMEOUT = 600.0


def bookinfo() -> Path:
    """Istio's Bookinfo networking samples: `samples/bookinfo/networking/` of the module."""
    return istio_source() / "samples" / "bookinfo" / "networking"


def bookinfo_file(name: str) -> Path:
    path = bookinfo() / name
    if not path.is_file():
        pytest.fail(f"Istio's Bookinfo samples hold no {name} (looked in {path.parent})")
    return path


@functools.cache
def istio_source() -> Path:
    error = os.environ.get(ERROR_ENV)
    if error:
        pytest.fail(f"the istio.io/istio module is missing: {error}")
    configured = os.environ.get(DIR_ENV)
    if configured:
        return Path(configured)
    try:
        run = subprocess.run(
            [str(SOURCE_SCRIPT)], capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"the istio.io/istio module is missing: {SOURCE_SCRIPT} failed: {exc}")
    if run.returncode != 0:
        pytest.fail(
            f"the istio.io/istio module is missing: {SOURCE_SCRIPT} exited {run.returncode}: "
            f"{run.stderr.strip()[-500:]}"
        )
    return Path(run.stdout.strip())
