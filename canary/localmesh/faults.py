"""Faults on the local mesh: kept in the state directory with their expiry, served by the
inbound Envoys of the targeted subset's instances.

This is the local counterpart of the EnvoyFilter a cluster gets: the record says which host,
which subset (by its DestinationRule labels), what fault and until when, so a demo restarted
with the same --state-dir knows what an earlier process injected and clears it once expired.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from canary.api import envoy_fault
from canary.engine.actions import Fault
from canary.errors import InvalidSpec

KIND = "Fault"
JSON = dict[str, Any]


def http_fault(fault: Fault) -> JSON:
    """The fault as Envoy's HTTPFault filter config; InvalidSpec when Envoy cannot express it."""
    try:
        return envoy_fault.http_fault(
            abort_status=fault.abort_status,
            abort_percent=fault.abort_percent,
            delay_seconds=fault.delay_seconds,
            delay_percent=fault.delay_percent,
        )
    except ValueError as exc:
        raise InvalidSpec(f"chaos: {exc}") from exc


@dataclass(frozen=True, slots=True)
class LocalFault:
    namespace: str
    host: str
    experiment: str
    subset: str
    labels: Mapping[str, str]
    expires_at: datetime | None
    config: JSON
    # How many of the subset's instances get it, the first by name; None: all.
    pods: int | None = None

    def body(self, name: str) -> JSON:
        return {
            "apiVersion": "canary.dev/local",
            "kind": KIND,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "host": self.host,
                "experiment": self.experiment,
                "subset": self.subset,
                "labels": dict(self.labels),
                "expiresAt": None if self.expires_at is None else self.expires_at.isoformat(),
                "fault": self.config,
                "pods": self.pods,
            },
        }

    @classmethod
    def of(cls, body: JSON) -> LocalFault:
        spec = body.get("spec") or {}
        expires = spec.get("expiresAt")
        try:
            expires_at = datetime.fromisoformat(expires) if isinstance(expires, str) else None
        except ValueError:
            expires_at = None
        return cls(
            namespace=(body.get("metadata") or {}).get("namespace") or "default",
            host=str(spec.get("host", "")),
            experiment=str(spec.get("experiment", "")),
            subset=str(spec.get("subset", "")),
            labels={str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
            expires_at=expires_at,
            config=dict(spec.get("fault") or {}),
            pods=spec["pods"] if isinstance(spec.get("pods"), int) else None,
        )
