"""What the demo records once a second: the rollout's state and what users of each version saw."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from canary.api import builtins, templating
from canary.api.status import CanaryStatus
from canary.engine.observation import Measurement
from canary.ports import MetricsProvider

VERSIONS = ("v1", "v2")
# Short enough to show a change within a few seconds, long enough to hold a few scrapes.
WINDOW = "10s"


@dataclass(frozen=True, slots=True)
class CheckView:
    name: str
    verdict: str
    value: float | None
    message: str


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    phase: str
    message: str
    canary_weight: int
    step: int
    failed_checks: int
    success_rate: dict[str, float | None] = field(default_factory=dict)
    p99_ms: dict[str, float | None] = field(default_factory=dict)
    checks: tuple[CheckView, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sample(
    t: float, status: CanaryStatus, metrics: MetricsProvider, *, service: str, namespace: str
) -> Sample:
    queries = builtins.QUERIES[builtins.QuerySet.ENVOY]
    success: dict[str, float | None] = {}
    p99: dict[str, float | None] = {}
    for version in VERSIONS:
        values = {
            "namespace": namespace,
            "service": service,
            "subset": version,
            "version": version,
            "interval": WINDOW,
        }
        success[version] = _value(
            metrics.measure(templating.render(queries[builtins.SUCCESS_RATE].query, values))
        )
        p99[version] = _value(
            metrics.measure(templating.render(queries[builtins.DURATION].query, values))
        )
    return Sample(
        t=round(t, 2),
        phase=str(status.phase or "Pending"),
        message=status.message,
        canary_weight=status.canary_weight,
        step=status.step,
        failed_checks=status.failed_checks,
        success_rate=success,
        p99_ms=p99,
        checks=tuple(CheckView(c.name, str(c.verdict), c.value, c.message) for c in status.checks),
    )


def _value(measurement: Measurement) -> float | None:
    return measurement.value
