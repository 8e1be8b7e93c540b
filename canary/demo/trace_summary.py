"""The demo's closing words on its trace check: the operation, each version's spans, and the
record that judged them (its value, the spans it judged, its slowest traces to open)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from canary.api.status import CanaryStatus
from canary.demo.timeline import Sample
from canary.demo.traces import SpanWatch


def summary(spans: SpanWatch, samples: Sequence[Sample], status: CanaryStatus) -> dict[str, Any]:
    """The trace check at the end: its operation, each version's worst value seen (and the
    last), and the record's evidence (spans judged, the slowest traces)."""
    record = next((c for c in status.checks if c.name == spans.check), None)
    failed = next(
        (c for c in reversed(status.history) if c.name == spans.check and c.passed is False),
        None,
    )
    chosen = failed or record
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
        "per_version": per_version,
        "record": None if chosen is None else chosen.model_dump(mode="json", by_alias=True),
    }


def lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"trace check {summary['check']}: {summary['service']} {summary['operation']!r}"]
    for version, seen in summary["per_version"].items():
        worst, last = seen["max"], seen["last"]
        lines.append(
            f"  {version}: {summary['value']} worst {ms(worst)}, last {ms(last)} "
            f"({seen['spans_last'] if seen['spans_last'] is not None else '—'} spans in the last "
            f"{summary['window_s']:g}s)"
        )
    record = summary["record"]
    if record is not None:
        evidence = record.get("spans") or {}
        lines.append(
            f"  judged {record.get('value')} ({record['verdict']}, {record.get('threshold')}) "
            f"on {evidence.get('spans')} spans; slowest traces: "
            f"{', '.join(evidence.get('examples') or []) or 'none'}"
        )
    return lines


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"
