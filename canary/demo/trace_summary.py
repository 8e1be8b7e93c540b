"""The demo's closing words on its trace check: the operation, each version's spans, and the
record that judged them (its value, the spans it judged, its slowest traces to open).

The local Jaeger keeps spans in memory and stops with the demo, so before it stops the demo
looks the record's example traces up there (`confirm`) and the report says what each one is:
a trace a person could have opened, with the duration of the judged operation's span in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from canary.api.status import CanaryStatus, CheckResult
from canary.demo.timeline import Sample
from canary.demo.traces import SpanWatch
from canary.errors import CanaryError
from canary.ports import SpanQuery, TraceSource

# Every canary span of a few minutes' demo, and then some.
_CONFIRM_LIMIT = 5_000


def record(status: CanaryStatus, check: str) -> CheckResult | None:
    """The trace check's record to explain: its last failing one, else its latest."""
    failed = next(
        (c for c in reversed(status.history) if c.name == check and c.passed is False), None
    )
    return failed or next((c for c in status.checks if c.name == check), None)


def found_in_jaeger(
    status: CanaryStatus,
    spans: SpanWatch | None,
    source: TraceSource | None,
    *,
    version: str,
    since: datetime,
) -> dict[str, float | None]:
    """The trace check's example traces as the local Jaeger has them, before it stops."""
    if spans is None or source is None:
        return {}
    judged = record(status, spans.check)
    examples = judged.spans.examples if judged is not None and judged.spans else []
    return confirm(spans, source, examples, version=version, since=since)


def confirm(
    spans: SpanWatch,
    source: TraceSource,
    trace_ids: Sequence[str],
    *,
    version: str,
    since: datetime,
) -> dict[str, float | None]:
    """Each trace ID with the duration (ms) of its span of the watched operation for `version`
    as Jaeger has it now, or None when Jaeger holds no such span (or cannot be asked)."""
    if not trace_ids:
        return {}
    query = SpanQuery(
        service=spans.service,
        operation=spans.operation,
        tags=spans.tags[version],
        start=since,
        end=datetime.now(UTC),
        limit=_CONFIRM_LIMIT,
        timeout=10.0,
    )
    try:
        sample = source.spans(query)
    except CanaryError:
        return dict.fromkeys(trace_ids)
    durations: dict[str, float] = {}
    for span in sample.spans:
        durations[span.trace_id] = max(durations.get(span.trace_id, 0.0), span.duration_ms)
    return {trace_id: durations.get(trace_id) for trace_id in trace_ids}


def summary(
    spans: SpanWatch,
    samples: Sequence[Sample],
    status: CanaryStatus,
    found: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """The trace check at the end: its operation, each version's worst value seen (and the
    last), the record's evidence, and its example traces as Jaeger had them."""
    chosen = record(status, spans.check)
    per_version: dict[str, dict[str, float | int | None]] = {}
    for version in spans.tags:
        values = [v for s in samples if (v := s.span_value.get(version)) is not None]
        counts = [c for s in samples if (c := s.span_count.get(version)) is not None]
        per_version[version] = {
            "max": max(values, default=None),
            "last": values[-1] if values else None,
            "spans_last": counts[-1] if counts else None,
        }
    return {
        "check": spans.check,
        "service": spans.service,
        "operation": spans.operation,
        "value": spans.label,
        "window_s": spans.window_s,
        "threshold_max": spans.threshold_max,
        "per_version": per_version,
        "record": None if chosen is None else chosen.model_dump(mode="json", by_alias=True),
        "examples": [
            {"traceId": trace_id, "inJaeger": ms is not None, "durationMs": ms}
            for trace_id, ms in (found or {}).items()
        ],
    }


def lines(summary: dict[str, Any]) -> list[str]:
    said = [f"trace check {summary['check']}: {summary['service']} {summary['operation']!r}"]
    for version, seen in summary["per_version"].items():
        count = seen["spans_last"]
        said.append(
            f"  {version}: {summary['value']} worst {_ms(seen['max'])}, last {_ms(seen['last'])} "
            f"({'—' if count is None else count} spans in the last {summary['window_s']:g}s)"
        )
    judged = summary["record"]
    if judged is not None:
        evidence = judged.get("spans") or {}
        said.append(
            f"  judged {_ms(judged.get('value'))} ({judged['verdict']}, {judged.get('threshold')})"
            f" on {evidence.get('spans')} spans at {judged.get('weight')}%"
        )
    for example in summary["examples"]:
        where = (
            f"{_ms(example['durationMs'])} ms in Jaeger"
            if example["inJaeger"]
            else "not found in Jaeger"
        )
        said.append(f"  example trace {example['traceId']}: {where}")
    return said


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"
