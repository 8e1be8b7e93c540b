"""The versions of the local mesh's demo service, and the instances that run them.

Apart from `mesh.py` so that what describes a version (its label, how its app misbehaves) reads
on its own; `mesh` re-exports both names, which callers use as `mesh.VersionSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from canary.localmesh import envoy, procs


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """One version of the service: its `version` label, and how its app behaves."""

    name: str
    error_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    # The DestinationRule subset whose pods carry this version; its spans are tagged with it.
    subset: str = ""
    # One operation's path (e.g. /checkout) slower by slow_ms for a share slow_rate of it.
    slow_path: str = ""
    slow_ms: float = 0.0
    slow_rate: float = 0.0

    @property
    def subset_name(self) -> str:
        return self.subset or self.name


@dataclass(frozen=True, slots=True)
class Instance:
    """One app instance and the inbound Envoy in front of it."""

    name: str
    version: str
    app: procs.Process
    app_port: int
    inbound: envoy.EnvoyHandle
    listen_port: int

    @property
    def route_file(self) -> Path:
        """The inbound Envoy's RDS file: a fault written here applies without a restart."""
        return self.inbound.workdir / envoy.ROUTE_FILE
