"""Builders for engine tests: a spec from a few overrides, observations, a fixed clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from canary.api.spec import CanarySpec
from canary.engine import revision
from canary.engine.observation import GateResult, Measurement, Observation, Traffic

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_spec(**analysis: Any) -> CanarySpec:
    spec: dict[str, Any] = {
        "service": {"host": "accounts"},
        "stable": {"subset": "v1"},
        "canary": {"subset": "v2"},
        "progressDeadline": "2m",
        "analysis": {
            "interval": "30s",
            "threshold": 2,
            "stepWeights": [10, 50],
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
            **analysis,
        },
    }
    return CanarySpec.model_validate(spec)


def seen(
    spec: CanarySpec,
    weights: Mapping[str, int] | None,
    *,
    applied: bool = True,
    ready: bool | None = None,
    values: Mapping[str, Measurement] | None = None,
    gates: Mapping[str, GateResult] | None = None,
    problems: tuple[str, ...] = (),
    writer: str | None = None,
) -> Observation:
    return Observation(
        revision=revision.of(spec),
        traffic=None
        if weights is None
        else Traffic(weights=dict(weights), applied=applied, writer=writer),
        target_ready=ready,
        measurements=dict(values or {}),
        gates=dict(gates or {}),
        problems=problems,
    )


GOOD = {"request-success-rate": Measurement.of(99.9, samples=1000)}
BAD = {"request-success-rate": Measurement.of(80.0, samples=1000)}
