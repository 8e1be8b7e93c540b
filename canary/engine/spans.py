"""What a trace check computes from the spans it was given: pure, so tested by table.

The error ratio is the share of error spans, in percent. A latency percentile is the
nearest-rank percentile of the spans' durations (the smallest duration that at least p% of the
spans do not exceed): an actual span's duration, never an interpolation between two, so the
example traces behind a value can be opened and show it. A comparison with the stable version
is the canary's value less the stable's, or over it (x/0 is +Inf, judged as PromQL's is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from canary.api.traces import Comparison, SpanCompute

# How many trace IDs a record keeps: enough to open a few, few enough for a status.
EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str
    duration_ms: float
    error: bool


def value_of(spans: Sequence[Span], compute: SpanCompute, percentile: float | None) -> float:
    """The value of non-empty `spans`; the caller judges an empty sample as no data."""
    if not spans:
        raise ValueError("no spans to compute a value from")
    if compute is SpanCompute.ERROR_RATIO:
        return 100.0 * sum(1 for span in spans if span.error) / len(spans)
    assert percentile is not None
    durations = sorted(span.duration_ms for span in spans)
    rank = max(1, math.ceil(percentile / 100.0 * len(durations)))
    return durations[rank - 1]


def worst(spans: Sequence[Span], compute: SpanCompute, count: int = EXAMPLES) -> list[str]:
    """Trace IDs of the spans a person should open first: errors (slowest first) for an error
    ratio, the slowest for a latency; each trace once."""
    if compute is SpanCompute.ERROR_RATIO:
        ranked = sorted(spans, key=lambda span: (not span.error, -span.duration_ms))
    else:
        ranked = sorted(spans, key=lambda span: -span.duration_ms)
    examples: list[str] = []
    for span in ranked:
        if compute is SpanCompute.ERROR_RATIO and not span.error:
            break
        if span.trace_id not in examples:
            examples.append(span.trace_id)
        if len(examples) == count:
            break
    return examples


def compared(canary: float, stable: float, comparison: Comparison) -> float:
    if comparison is Comparison.DIFFERENCE:
        return canary - stable
    if stable == 0:
        return 0.0 if canary == 0 else math.inf
    return canary / stable
