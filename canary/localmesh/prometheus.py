"""The local Prometheus: found on the machine, configured to scrape every Envoy each second.

Prometheus is not a Python package, so it comes from the machine: `CANARY_PROMETHEUS`, or
`prometheus` on PATH, which `scripts/install-prometheus` provides (Debian's package). The
config is generated per run: one job per role of Envoy (client side, inbound), each target
carrying the labels of what it fronts (version, instance), so a query can tell the versions
apart even for metrics whose names do not say it. A one-second scrape and evaluation interval
lets a demo step of a few seconds be judged on real samples; its TSDB lives in the run's
working directory and goes with it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.localmesh import procs

_INSTALL_HINT = (
    "run scripts/install-prometheus (installs Debian's `prometheus` package), or set "
    "CANARY_PROMETHEUS to a prometheus binary"
)


class PrometheusNotFound(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    """One scrape target: `host:port` of an Envoy admin listener and the labels it carries."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PrometheusHandle:
    process: procs.Process
    port: int
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_targets_up(self, *, expected: int, timeout: float = 20.0) -> None:
        """Waits until `expected` targets have been scraped successfully.

        `/-/ready` comes long before the first scrape: Prometheus hands discovered targets to
        the scrape loops at most every 5 s, a fixed throttle in 2.x. A caller that needs data
        (the demo's first step) waits here, best after starting everything else meanwhile.
        """
        deadline = time.monotonic() + timeout
        up = 0
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise self.process.failure("exited while waiting for its first scrapes")
            up = self._targets_up()
            if up >= expected:
                return
            time.sleep(0.25)
        raise self.process.failure(
            f"scraped {up} of {expected} targets successfully within {timeout:.0f}s"
        )

    def _targets_up(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=2) as response:
                body = json.load(response)
        except (OSError, ValueError):
            return 0
        active = body.get("data", {}).get("activeTargets", [])
        return sum(1 for target in active if target.get("health") == "up")


def prometheus_binary() -> Path:
    """CANARY_PROMETHEUS, else `prometheus` on PATH."""
    override = os.environ.get("CANARY_PROMETHEUS")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PrometheusNotFound(
                f"CANARY_PROMETHEUS={override} is not an executable file; {_INSTALL_HINT}"
            )
        return path
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    raise PrometheusNotFound(f"no `prometheus` on PATH: {_INSTALL_HINT}")


def scrape_config(
    targets: Mapping[str, Sequence[str | Target]],
    *,
    metrics_jobs: Mapping[str, Sequence[str | Target]] | None = None,
) -> dict[str, Any]:
    """The Prometheus config: every target's `/stats/prometheus`, every second; and every
    target of `metrics_jobs` (Jaeger's span metrics, say) at `/metrics`, as often."""
    jobs = [_job(job, job_targets, "/stats/prometheus") for job, job_targets in targets.items()]
    extra = metrics_jobs or {}
    jobs += [_job(job, job_targets, "/metrics") for job, job_targets in extra.items()]
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": jobs,
    }


def _job(name: str, job_targets: Sequence[str | Target], metrics_path: str) -> dict[str, Any]:
    groups = [
        {"targets": [t.address], "labels": dict(t.labels)}
        if isinstance(t, Target)
        else {"targets": [t]}
        for t in job_targets
    ]
    return {
        "job_name": name,
        "metrics_path": metrics_path,
        "scrape_interval": "1s",
        # Below the interval, so a stuck target cannot pile up overlapping scrapes.
        "scrape_timeout": "900ms",
        "static_configs": groups,
    }


def start_prometheus(
    supervisor: procs.Supervisor,
    *,
    targets: Mapping[str, Sequence[str | Target]],
    workdir: Path,
    port: int,
    metrics_jobs: Mapping[str, Sequence[str | Target]] | None = None,
    timeout: float = 30.0,
) -> PrometheusHandle:
    """Writes the config, starts Prometheus on 127.0.0.1:`port`, waits for `/-/ready`.

    `metrics_jobs` adds jobs scraped at `/metrics`, e.g. `{"jaeger": [jaeger.metrics_address]}`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    # JSON is YAML, and needs no YAML writer here.
    config_path.write_text(json.dumps(scrape_config(targets, metrics_jobs=metrics_jobs), indent=2))
    argv = [
        str(prometheus_binary()),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # A demo run is minutes long; the retention only keeps a forgotten directory small.
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
    process = supervisor.start("prometheus", argv, cwd=workdir)
    handle = PrometheusHandle(process=process, port=port, config_path=config_path)
    procs.wait_http(f"{handle.url}/-/ready", timeout=timeout, process=process)
    return handle
