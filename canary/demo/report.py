"""The demo's report: a JSON file with every sample and event, and an SVG picture of the rollout.

The picture is drawn by hand as SVG (a few polylines on a grid) so the report needs no plotting
library; any browser opens it. With a trace check, a second panel below shows the judged
operation's span value per version (e.g. the p99 of `POST /checkout` in ms) and the check's
threshold, on the same time axis; with a check that compares with stable, a panel of each
side's rate of bad events with its confidence sequence as a band, and where the test decided.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from canary.demo.timeline import CheckView, Sample

WIDTH, HEIGHT, MARGIN = 900, 380, 56
SPAN_PANEL = 200
COLOURS = {"weight": "#1f77b4", "v1": "#2ca02c", "v2": "#ff7f0e", "callers": "#9467bd"}
CHAOS_FILL = "#fde0dc"


def write(
    directory: Path,
    *,
    summary: dict[str, Any],
    samples: Sequence[Sample],
    events: Sequence[dict[str, Any]],
    span_threshold: float | None = None,
) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "report.json"
    data.write_text(
        json.dumps(
            {"summary": summary, "samples": [s.to_json() for s in samples], "events": events},
            indent=1,
        )
    )
    picture = directory / "report.svg"
    picture.write_text(
        svg(samples, title=str(summary.get("title", "canary demo")), span_threshold=span_threshold)
    )
    return data, picture


def svg(samples: Sequence[Sample], *, title: str, span_threshold: float | None = None) -> str:
    end = max((s.t for s in samples), default=1.0) or 1.0
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    traced = any(s.span_operation for s in samples)
    compared = any(_compared(s) for s in samples)
    height = HEIGHT + (SPAN_PANEL if traced else 0) + (SPAN_PANEL if compared else 0)

    def x(t: float) -> float:
        return MARGIN + plot_w * t / end

    def y(percent: float) -> float:
        return MARGIN + plot_h * (1 - max(0.0, min(100.0, percent)) / 100)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{MARGIN}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for percent in range(0, 101, 25):
        parts.append(
            f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{y(percent):.1f}" '
            f'y2="{y(percent):.1f}" stroke="#ddd"/>'
            f'<text x="{MARGIN - 8}" y="{y(percent) + 4:.1f}" text-anchor="end">{percent}%</text>'
        )
    for second in range(0, int(end) + 1, max(1, int(end) // 10 or 1)):
        parts.append(
            f'<text x="{x(second):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle" '
            f'fill="#555">{second}s</text>'
        )
    # A band wherever an experiment was running: the fault, then its verdict's short wait.
    for start, stop in _chaos_spans(samples):
        parts.append(
            f'<rect x="{x(start):.1f}" y="{MARGIN}" width="{max(1.0, x(stop) - x(start)):.1f}" '
            f'height="{plot_h}" fill="{CHAOS_FILL}"/>'
            f'<text x="{x(start) + 3:.1f}" y="{MARGIN + 14}" fill="#c0392b">chaos</text>'
        )
    previous_phase = None
    changes = 0
    for s in samples:
        if s.phase != previous_phase:
            # Phases often change a second apart; alternate two rows so their names don't collide.
            label_y = MARGIN - 4 - 13 * (changes % 2)
            parts.append(
                f'<line x1="{x(s.t):.1f}" x2="{x(s.t):.1f}" y1="{label_y + 2}" '
                f'y2="{HEIGHT - MARGIN}" stroke="#999" stroke-dasharray="3,3"/>'
                f'<text x="{x(s.t) + 3:.1f}" y="{label_y}" fill="#555"'
                f"{_anchor_near_edge(x(s.t))}>{escape(s.phase)}</text>"
            )
            previous_phase = s.phase
            changes += 1
    series = {
        "weight": [(s.t, float(s.canary_weight)) for s in samples],
        "v1": [(s.t, v) for s in samples if (v := s.success_rate.get(s.stable)) is not None],
        "v2": [(s.t, v) for s in samples if (v := s.success_rate.get(s.canary)) is not None],
        "callers": [(s.t, v) for s in samples if (v := s.callers_success_rate) is not None],
    }
    for name, points in series.items():
        if points:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{COLOURS[name]}" stroke-width="2"/>'
            )
    # The colours are the stable's and the canary's, whatever the policy names its versions.
    stable, canary = (samples[0].stable, samples[0].canary) if samples else ("v1", "v2")
    legend = [
        ("weight", "canary weight"),
        ("v1", f"{stable} success rate"),
        ("v2", f"{canary} success rate"),
        ("callers", "all callers"),
    ]
    # Below the plot, where no line can run through it.
    for index, (name, label) in enumerate(legend):
        left = MARGIN + 140 * index
        top = HEIGHT - 8
        parts.append(
            f'<rect x="{left}" y="{top - 6}" width="12" height="4" fill="{COLOURS[name]}"/>'
            f'<text x="{left + 18}" y="{top}">{label}</text>'
        )
    if traced:
        parts.extend(_span_panel(samples, x, top=HEIGHT, threshold=span_threshold))
    if compared:
        top = HEIGHT + (SPAN_PANEL if traced else 0)
        parts.extend(_comparison_panel(samples, x, top=top))
    parts.append("</svg>")
    return "\n".join(parts)


def _span_panel(
    samples: Sequence[Sample], x: Callable[[float], float], *, top: float, threshold: float | None
) -> list[str]:
    """The trace check's operation: each version's span value over time, and the threshold."""
    bottom = top + SPAN_PANEL - 30
    series = {
        version: [(s.t, v) for s in samples if (v := s.span_value.get(version)) is not None]
        for version in (samples[0].stable, samples[0].canary)
    }
    values = [v for points in series.values() for _, v in points]
    ceiling = max([*values, threshold or 0.0, 1.0]) * 1.1

    def y(value: float) -> float:
        return bottom - (bottom - top - 20) * min(value, ceiling) / ceiling

    named = next(s for s in samples if s.span_operation)
    parts = [
        f'<text x="{MARGIN}" y="{top + 10}" font-weight="bold">'
        f"{escape(named.span_operation)} {escape(named.span_label)} per version (spans in "
        "Jaeger)</text>",
        f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{bottom}" y2="{bottom}" stroke="#ddd"/>',
        f'<text x="{MARGIN - 8}" y="{bottom + 4}" text-anchor="end">0</text>',
        f'<text x="{MARGIN - 8}" y="{y(ceiling / 1.1) + 4:.1f}" text-anchor="end">'
        f"{ceiling / 1.1:.0f}</text>",
    ]
    if threshold is not None:
        parts.append(
            f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#c0392b" stroke-dasharray="6,4"/>'
            f'<text x="{WIDTH - MARGIN}" y="{y(threshold) - 4:.1f}" text-anchor="end" '
            f'fill="#c0392b">threshold {threshold:g}</text>'
        )
    # Stable in v1's colour, canary in v2's, whatever the policy calls them.
    colours = dict(zip(series, (COLOURS["v1"], COLOURS["v2"]), strict=True))
    for version, points in series.items():
        if points:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colours[version]}" '
                'stroke-width="2"/>'
            )
    for index, version in enumerate(series):
        left = MARGIN + 140 * index
        parts.append(
            f'<rect x="{left}" y="{bottom + 16}" width="12" height="4" fill="{colours[version]}"/>'
            f'<text x="{left + 18}" y="{bottom + 22}">{version} spans</text>'
        )
    return parts


def _compared(sample: Sample) -> CheckView | None:
    """The sample's first check that compares with stable, if any."""
    return next((check for check in sample.checks if check.comparison is not None), None)


def _comparison_panel(
    samples: Sequence[Sample], x: Callable[[float], float], *, top: float
) -> list[str]:
    """A comparing check's estimates over time: each side's rate of bad events, its confidence
    sequence as a band around it, and a mark where the test decided."""
    bottom = top + SPAN_PANEL - 30
    points = [(s.t, c.comparison) for s in samples if (c := _compared(s)) and c.comparison]
    rates = [r for _, v in points for r in (v.canary.rate, v.stable.rate) if r is not None]
    # Early intervals are wide: the axis is the rates', so the bands narrowing into it show.
    ceiling = max([*rates, 0.001]) * 3

    def y(rate: float) -> float:
        return bottom - (bottom - top - 20) * min(rate, ceiling) / ceiling

    named = next(c for s in samples if (c := _compared(s)))
    stable, canary = samples[0].stable, samples[0].canary
    parts = [
        f'<text x="{MARGIN}" y="{top + 10}" font-weight="bold">{escape(named.name)} compared '
        "with stable: each side's rate of bad events and its confidence sequence</text>",
        f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{bottom}" y2="{bottom}" stroke="#ddd"/>',
        f'<text x="{MARGIN - 8}" y="{bottom + 4}" text-anchor="end">0%</text>',
        f'<text x="{MARGIN - 8}" y="{y(ceiling) + 4:.1f}" text-anchor="end">'
        f"{100 * ceiling:.1f}%</text>",
    ]
    for side, colour in (("stable", COLOURS["v1"]), ("canary", COLOURS["v2"])):
        estimates = [
            (t, rate) for t, view in points if (rate := getattr(view, side)).rate is not None
        ]
        if not estimates:
            continue
        upper = [f"{x(t):.1f},{y(rate.high):.1f}" for t, rate in estimates]
        lower = [f"{x(t):.1f},{y(rate.low):.1f}" for t, rate in reversed(estimates)]
        line = " ".join(f"{x(t):.1f},{y(rate.rate or 0.0):.1f}" for t, rate in estimates)
        parts.append(
            f'<polygon points="{" ".join(upper + lower)}" fill="{colour}" fill-opacity="0.18"/>'
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
    decided = next(((t, v) for t, v in points if v.verdict != "undecided"), None)
    if decided is not None:
        t, view = decided
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + 16}" y2="{bottom}" '
            'stroke="#c0392b" stroke-dasharray="6,4"/>'
            f'<text x="{x(t) + 3:.1f}" y="{top + 28}" fill="#c0392b"'
            f"{_anchor_near_edge(x(t))}>{escape(view.verdict)} (e-value "
            f"{view.evidence:.3g} of {view.threshold:g})</text>"
        )
    for index, (label, colour) in enumerate(
        ((f"{stable} bad events", COLOURS["v1"]), (f"{canary} bad events", COLOURS["v2"]))
    ):
        left = MARGIN + 140 * index
        parts.append(
            f'<rect x="{left}" y="{bottom + 16}" width="12" height="4" fill="{colour}"/>'
            f'<text x="{left + 18}" y="{bottom + 22}">{escape(label)}</text>'
        )
    return parts


def _chaos_spans(samples: Sequence[Sample]) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for sample in samples:
        running = any(chaos.phase == "Running" for chaos in sample.chaos)
        if running and start is None:
            start = sample.t
        elif not running and start is not None:
            spans.append((start, sample.t))
            start = None
    if start is not None and samples:
        spans.append((start, samples[-1].t))
    return spans


def _anchor_near_edge(left: float) -> str:
    # A label that starts near the right edge would run off the picture: end it at the line.
    return ' text-anchor="end"' if left > WIDTH - MARGIN - 60 else ""
