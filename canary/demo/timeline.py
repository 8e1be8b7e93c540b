"""What the demo records once a second: the rollout's state and what users of each version saw.

With a trace check, also the judged operation's spans of each version (how many, and the
check's value of them, e.g. their p99), asked of Jaeger directly (traces.py). With a check that
compares with stable, its sequential test as the tick's record has it: each side's rate and
interval, and the e-value against 1/alpha.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from canary.api import builtins, templating
from canary.api.comparison import ComparisonRecord, RateEstimate
from canary.api.status import CanaryStatus
from canary.demo.traces import SpanWatch
from canary.engine.observation import Measurement
from canary.ports import MetricsProvider, TraceSource

# The demo's own versions (and subsets): stable first, then canary.
VERSIONS = ("v1", "v2")
# Short enough to show a change within a few seconds, long enough to hold a few scrapes.
WINDOW = "10s"
_SERVICE = 'envoy_cluster_name=~"outbound[|][0-9]+[|][^|]*[|]{{ service }}([.].*)?"'
_CALLERS = (
    f'100 * sum(rate(envoy_cluster_upstream_rq_xx{{{_SERVICE},envoy_response_code_class!="5"}}'
    f"[{{{{ window }}}}])) / "
    f"sum(rate(envoy_cluster_upstream_rq_xx{{{_SERVICE}}}[{{{{ window }}}}]))"
)
_EJECTED = (
    "sum(envoy_cluster_outlier_detection_ejections_active{"
    'envoy_cluster_name=~"outbound[|][0-9]+[|]{{ subset }}[|]{{ service }}([.].*)?"})'
)


@dataclass(frozen=True, slots=True)
class RateView:
    """One side's rate of bad events with its confidence sequence, as fractions."""

    rate: float | None
    low: float
    high: float
    requests: float
    bad: float


@dataclass(frozen=True, slots=True)
class ComparisonView:
    """A comparing check's sequential test as of one tick (the record's `comparison`)."""

    verdict: str
    # The e-value against "the canary is no worse than stable", and the 1/alpha it must reach.
    evidence: float
    threshold: float
    equivalence: float
    canary: RateView
    stable: RateView
    decided_after: float | None
    message: str

    @classmethod
    def of(cls, record: ComparisonRecord) -> ComparisonView:
        return cls(
            verdict=str(record.verdict),
            evidence=record.regression_evidence,
            threshold=record.threshold,
            equivalence=record.equivalence_evidence,
            canary=_rate(record.canary),
            stable=_rate(record.stable),
            decided_after=record.decided_after,
            message=record.message,
        )


def _rate(estimate: RateEstimate) -> RateView:
    return RateView(estimate.rate, estimate.low, estimate.high, estimate.requests, estimate.bad)


@dataclass(frozen=True, slots=True)
class CheckView:
    name: str
    verdict: str
    value: float | None
    message: str
    # A trace check's evidence: the operation, the canary's spans judged, the worst traces.
    operation: str = ""
    spans: int | None = None
    examples: tuple[str, ...] = ()
    # When the record was measured (ISO 8601), to tell one tick's record from the next.
    at: str = ""
    # False for an observe-mode check (a dry run whose verdicts never count).
    counted: bool = True
    # For a check that compares with stable: the test as of this record.
    comparison: ComparisonView | None = None


@dataclass(frozen=True, slots=True)
class ChaosView:
    name: str
    phase: str
    fault: str
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
    # What every caller saw, both versions together, and how many v2 hosts the callers' outlier
    # detection holds ejected right now.
    callers_success_rate: float | None = None
    ejected: float | None = None
    chaos: tuple[ChaosView, ...] = ()
    # The gate the rollout waits at (a person's approval, a confirm webhook), if any.
    waiting_for: str = ""
    # The trace check's operation (`POST /checkout`), what its value is (`p99 ms`), and each
    # version's value and number of spans over the check's window, as Jaeger has them now.
    span_operation: str = ""
    span_label: str = ""
    span_value: dict[str, float | None] = field(default_factory=dict)
    span_count: dict[str, int | None] = field(default_factory=dict)
    # The version labels the per-version figures are keyed by: a policy's own (v1 -> v3, say).
    stable: str = VERSIONS[0]
    canary: str = VERSIONS[1]
    # The ingress gateway's own counters, when the rollout runs behind one (ingress.py).
    gateway: dict[str, int] = field(default_factory=dict)
    # What each observe-mode check would have done had it counted (demo/dry_run.py).
    dry_run: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sample(
    t: float,
    status: CanaryStatus,
    metrics: MetricsProvider,
    *,
    service: str,
    namespace: str,
    spans: SpanWatch | None = None,
    traces: TraceSource | None = None,
    versions: tuple[tuple[str, str], tuple[str, str]] = ((VERSIONS[0],) * 2, (VERSIONS[1],) * 2),
) -> Sample:
    """`versions`: (version label, subset) of stable, then of canary."""
    queries = builtins.QUERIES[builtins.QuerySet.ENVOY]
    success: dict[str, float | None] = {}
    p99: dict[str, float | None] = {}
    for version, subset in versions:
        values = {
            "namespace": namespace,
            "service": service,
            "subset": subset,
            "version": version,
            "interval": WINDOW,
        }
        success[version] = _value(
            metrics.measure(templating.render(queries[builtins.SUCCESS_RATE].query, values))
        )
        p99[version] = _value(
            metrics.measure(templating.render(queries[builtins.DURATION].query, values))
        )
    canary_subset = versions[1][1]
    callers = {
        "namespace": namespace,
        "service": service,
        "subset": canary_subset,
        "window": WINDOW,
    }
    seen = spans.measure(traces) if spans is not None and traces is not None else {}
    return Sample(
        t=round(t, 2),
        phase=str(status.phase or "Pending"),
        message=status.message,
        canary_weight=status.canary_weight,
        step=status.step,
        failed_checks=status.failed_checks,
        waiting_for=status.waiting_for,
        success_rate=success,
        p99_ms=p99,
        checks=tuple(
            CheckView(
                c.name,
                str(c.verdict),
                c.value,
                c.message,
                operation=c.spans.operation if c.spans else "",
                spans=c.spans.spans if c.spans else None,
                examples=tuple(c.spans.examples) if c.spans else (),
                at=c.at.isoformat(),
                counted=c.counted,
                comparison=None if c.comparison is None else ComparisonView.of(c.comparison),
            )
            for c in status.checks
        ),
        callers_success_rate=_value(metrics.measure(templating.render(_CALLERS, callers))),
        ejected=_value(metrics.measure(templating.render(_EJECTED, callers))),
        chaos=tuple(ChaosView(c.name, str(c.phase), c.fault, c.message) for c in status.chaos),
        span_operation=spans.operation if spans else "",
        span_label=spans.label if spans else "",
        span_value={version: stat.value for version, stat in seen.items()},
        span_count={version: stat.spans for version, stat in seen.items()},
        stable=versions[0][0],
        canary=versions[1][0],
    )


def _value(measurement: Measurement) -> float | None:
    return measurement.value
