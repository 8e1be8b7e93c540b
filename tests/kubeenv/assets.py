"""What the kube tests need from outside the repository: the servers' binaries and Istio's CRDs.

Both live in one cache outside the repository (`CANARY_TESTENV_CACHE`, by default
`~/.cache/canary-testenv`), so nothing built or fetched is ever committed, and a warm run costs
nothing. `tests/run` builds the binaries before pytest starts and passes their directory in
`CANARY_KUBE_BIN` (or the build's failure in `CANARY_KUBE_BUILD_ERROR`, so that the kube tests
error with it instead of building a second time); without either, the build runs from here.

Anything missing raises `Missing` with the way to get it: the kube tests then error, never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BUILD_SCRIPT = Path(__file__).with_name("build")
BIN_ENV = "CANARY_KUBE_BIN"
BUILD_ERROR_ENV = "CANARY_KUBE_BUILD_ERROR"
BINARIES = ("kube-apiserver", "etcd")

ISTIO_API_MODULE = "istio.io/api"
ISTIO_API_VERSION = "v1.31.4"
ISTIO_CRDS_IN_MODULE = "kubernetes/customresourcedefinitions.gen.yaml"

# A cold build of kube-apiserver takes up to 25 minutes on 2 cores; twice that is a hang.
BUILD_TIMEOUT = 3600.0


class Missing(Exception):
    """Something the kube tests need could not be built or fetched; the message says why."""


def cache_root() -> Path:
    configured = os.environ.get("CANARY_TESTENV_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "canary-testenv"


def kube_bin_dir(*, timeout: float = BUILD_TIMEOUT) -> Path:
    """The directory holding `kube-apiserver` and `etcd`, built first when nobody said where.

    The build's progress goes to our stderr, so the caller decides whether anyone sees it.
    """
    error = os.environ.get(BUILD_ERROR_ENV)
    if error:
        raise Missing(error)
    configured = os.environ.get(BIN_ENV)
    directory = Path(configured) if configured else _build(timeout)
    missing = [name for name in BINARIES if not os.access(directory / name, os.X_OK)]
    if missing:
        source = f"${BIN_ENV}" if configured else str(BUILD_SCRIPT)
        raise Missing(
            f"no executable {' or '.join(missing)} in {directory} (from {source}); "
            f"build them with {BUILD_SCRIPT}"
        )
    return directory


def _build(timeout: float) -> Path:
    return run_build(BUILD_SCRIPT, timeout)


def run_build(script: Path, timeout: float) -> Path:
    """Runs one of the build scripts of tests/ (their progress on our stderr); the directory it
    prints last. The istiod tests build the same way."""
    try:
        result = subprocess.run(
            [str(script)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise Missing(f"{script} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise Missing(f"cannot run {script}: {exc}") from exc
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise Missing(
            f"{script} failed with exit code {result.returncode}; "
            "its output (on stderr, above) says why"
        )
    return Path(lines[-1])


def tool_dir(script: Path, *, binary: str, dir_env: str, error_env: str, timeout: float) -> Path:
    """The directory holding `binary`, as a build script of tests/ made it: from `dir_env` when
    tests/run said where, the failure in `error_env` when its build failed (raised, not built a
    second time), else built now. Missing when there is no such executable."""
    error = os.environ.get(error_env)
    if error:
        raise Missing(error)
    configured = os.environ.get(dir_env)
    directory = Path(configured) if configured else run_build(script, timeout)
    if not os.access(directory / binary, os.X_OK):
        source = f"${dir_env}" if configured else str(script)
        raise Missing(
            f"no executable {binary} in {directory} (from {source}); build it with {script}"
        )
    return directory


def istio_crds(*, timeout: float = 300.0) -> Path:
    """Istio's CustomResourceDefinitions, one multi-document YAML file, fetched once.

    They come from the Go module istio.io/api, the source istiod's own charts copy them from,
    through the Go module proxy that the build uses anyway.
    """
    target = cache_root() / f"istio-api-{ISTIO_API_VERSION}" / Path(ISTIO_CRDS_IN_MODULE).name
    if target.is_file():
        return target
    go = shutil.which("go")
    if go is None:
        raise Missing(f"go is needed to fetch Istio's CRDs ({ISTIO_API_MODULE})")
    module = f"{ISTIO_API_MODULE}@{ISTIO_API_VERSION}"
    # Outside any module: in tests/kubeenv, `go mod download` would try to edit its go.mod.
    with tempfile.TemporaryDirectory(prefix="canary-istio-api-") as scratch:
        try:
            result = subprocess.run(
                [go, "mod", "download", "-json", module],
                cwd=scratch,
                env={**os.environ, "GOTOOLCHAIN": "local"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise Missing(f"go mod download {module} did not finish within {timeout:g} s") from exc
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or "Dir" not in info:
        problem = info.get("Error") or result.stderr.strip() or f"exit code {result.returncode}"
        raise Missing(f"go mod download {module} failed: {problem}")
    source = Path(info["Dir"]) / ISTIO_CRDS_IN_MODULE
    if not source.is_file():
        raise Missing(f"{module} has no {ISTIO_CRDS_IN_MODULE}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside it and rename, so a concurrent run never reads half a file.
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(source.read_bytes())
    partial.replace(target)
    return target
