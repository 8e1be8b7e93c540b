"""Why a rollout with a comparing check ended as it did, in words for the live view and report.

Three things: a comparing check's sequential test as one line (each side's rate with its
confidence sequence, the regression e-value against 1/alpha); what an observe-mode check (a dry
run: `mode: observe`) would have done had it counted, as the engine counts (the rollout's
failures reaching `analysis.threshold`); and the closing lines that say why the run ended.

The status keeps only the last 50 judged records, fewer than a rollout makes, so the `Ledger`
keeps every record the demo saw once a second: the dry run's verdict needs the whole rollout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from canary.api.comparison import ComparisonRecord, ComparisonVerdict
from canary.api.resources import Canary
from canary.api.status import CanaryStatus, CheckResult, Verdict
from canary.demo.timeline import ComparisonView, RateView

# How many of the comparison's ticks the closing lines show, evenly spread over the rollout.
NARROWING_ROWS = 6


@dataclass(frozen=True, slots=True)
class Seen:
    # Seconds into the demo when the record was first seen.
    t: float
    record: CheckResult


class Ledger:
    """Every judged record of the rollout once, oldest first, and what the dry runs would do.

    `threshold` is the Canary's `analysis.threshold`: the rollout's failed checks that roll back;
    `ranges` each check's thresholdRange as text (`>= 95`), for those that have one.
    """

    def __init__(
        self,
        threshold: int,
        ranges: Mapping[str, str] | None = None,
        min_effects: Mapping[str, float] | None = None,
    ) -> None:
        self.threshold = threshold
        self.ranges = dict(ranges or {})
        self.min_effects = dict(min_effects or {})
        self._seen: dict[tuple[str, datetime], Seen] = {}

    @classmethod
    def of(cls, bodies: Sequence[Mapping[str, Any]]) -> Ledger:
        """A ledger for the demo's Canary (among `bodies`, the objects the demo seeded)."""
        canary = next(Canary.model_validate(b) for b in bodies if b.get("kind") == "Canary")
        analysis = canary.spec.analysis
        ranges = {
            metric.name: metric.threshold_range.describe()
            for metric in analysis.metrics
            if metric.threshold_range is not None
        }
        min_effects = {
            metric.name: metric.compare.min_effect
            for metric in analysis.metrics
            if metric.compare is not None
        }
        return cls(analysis.threshold, ranges, min_effects)

    def add(self, status: CanaryStatus, t: float) -> None:
        for record in (*status.history, *status.checks):
            self._seen.setdefault((record.name, record.at), Seen(t, record))

    @property
    def seen(self) -> list[Seen]:
        return sorted(self._seen.values(), key=lambda seen: seen.record.at)

    def records_of(self, name: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.record.name == name]

    def dry_run(self, canary: str) -> tuple[str, ...]:
        """For each observe-mode check: how often it failed, and where it would have rolled
        `canary` back had it counted beside the checks that did count."""
        names = dict.fromkeys(s.record.name for s in self.seen if not s.record.counted)
        return tuple(self._would_have(name, canary) for name in names)

    def _would_have(self, name: str, canary: str) -> str:
        mine = self.records_of(name)
        judged = [s for s in mine if s.record.verdict is not Verdict.INCONCLUSIVE]
        failed = [s for s in judged if s.record.verdict is Verdict.FAIL]
        line = f"{name} ({self.ranges.get(name) or mine[-1].record.threshold}) is a dry run"
        so_far = f"it failed {len(failed)} of {len(judged)} judged ticks"
        # The engine's count: every counted failure of the rollout, with this check's added.
        failures = [
            s
            for s in self.seen
            if s.record.verdict is Verdict.FAIL and (s.record.counted or s.record.name == name)
        ]
        if len(failures) < self.threshold:
            return f"{line}: {so_far}; counted, it would not have rolled {canary} back"
        fatal = failures[self.threshold - 1]
        record = fatal.record
        value = "no data" if record.value is None else f"{record.value:.2f}"
        return (
            f"{line}: {so_far}; counted, it would have rolled {canary} back at step "
            f"{record.step + 1} (weight {record.weight}%, t={fatal.t:.0f}s), where its {value} "
            f"brought the rollout's failed checks to the threshold, {self.threshold}"
        )


def proven(status: CanaryStatus) -> bool | None:
    """Whether a comparing check of the rollout proved a regression (by its stored test, or a
    record); None when no comparison was ever made, which proves nothing either way."""
    records = (*status.checks, *status.history)
    if not status.sequential and not any(record.comparison for record in records):
        return None
    return any(state.verdict is ComparisonVerdict.REGRESSION for state in status.sequential) or any(
        _comparison_failed(record) for record in records
    )


def line(view: ComparisonView, *, stable: str, canary: str) -> str:
    """One tick of a comparing check: both sides' rates and intervals, the regression e-value."""
    decided = (
        f" after {view.decided_after:,.0f} {canary} requests"
        if view.decided_after is not None
        else ""
    )
    refused = f"  ({view.message})" if view.message else ""
    return (
        f"{canary} {_rate(view.canary)} vs {stable} {_rate(view.stable)}  regression e-value "
        f"{view.evidence:.3g} of {view.threshold:g}  {view.verdict}{decided}{refused}"
    )


def closing(ledger: Ledger, *, stable: str, canary: str) -> list[str]:
    """Why the rollout ended as it did: each comparing check's verdict and how its estimate
    narrowed, its threshold beside it, and what each dry run would have done."""
    lines: list[str] = []
    compared = dict.fromkeys(s.record.name for s in ledger.seen if s.record.comparison)
    for name in compared:
        mine = [s for s in ledger.records_of(name) if s.record.comparison is not None]
        last = ComparisonView.of(_comparison(mine[-1].record))
        said = _verdict(
            last,
            canary=canary,
            min_effect=ledger.min_effects.get(name),
            counted=mine[-1].record.counted,
        )
        lines.append(f"{name} compared with stable: {said}")
        lines.append(f"  {line(last, stable=stable, canary=canary)}")
        beside = _beside(ledger.records_of(name), canary, ledger.ranges.get(name))
        if beside:
            lines.append(f"  {beside}")
        lines.append("  how the estimate narrowed:")
        for seen in _spread(mine, NARROWING_ROWS):
            view = ComparisonView.of(_comparison(seen.record))
            lines.append(f"    t={seen.t:5.1f}s  {line(view, stable=stable, canary=canary)}")
    lines.extend(ledger.dry_run(canary))
    return lines


def _verdict(view: ComparisonView, *, canary: str, min_effect: float | None, counted: bool) -> str:
    after = "" if view.decided_after is None else f" after {view.decided_after:,.0f}"
    if view.verdict == ComparisonVerdict.REGRESSION:
        then = "rolled back at once" if counted else "a dry run, so not rolled back"
        return (
            f"{canary} proven worse{after} of its requests (regression e-value reached "
            f"1/alpha = {view.threshold:g}): {then}"
        )
    if view.verdict == ComparisonVerdict.EQUIVALENT:
        within = f"less than {min_effect:g}x" if min_effect else "within minEffect of"
        return (
            f"{canary} shown {within} stable's rate{after} of its requests (equivalence "
            f"e-value reached 1/alpha = {view.threshold:g}): no regression"
        )
    return (
        f"no regression proven (regression e-value {view.evidence:.3g}, short of 1/alpha = "
        f"{view.threshold:g}): nothing held against {canary}"
    )


def _beside(mine: Sequence[Seen], canary: str, threshold: str | None) -> str:
    """The threshold a comparing check keeps beside its comparison, and whether it ever failed
    (a failure of the comparison's own, a proven regression, is not the line's)."""
    values = [s.record for s in mine if s.record.value is not None]
    if not values or not threshold:
        return ""
    failed = sum(1 for r in values if r.verdict is Verdict.FAIL and not _comparison_failed(r))
    lowest, highest = min(r.value or 0.0 for r in values), max(r.value or 0.0 for r in values)
    where = f"{canary}'s value {lowest:.2f}..{highest:.2f} over {len(values)} ticks"
    if failed:
        return f"its {threshold} line failed {failed} times ({where})"
    return f"its {threshold} line never failed ({where})"


def _comparison_failed(record: CheckResult) -> bool:
    return (
        record.comparison is not None and record.comparison.verdict is ComparisonVerdict.REGRESSION
    )


def _comparison(record: CheckResult) -> ComparisonRecord:
    assert record.comparison is not None
    return record.comparison


def _spread(seen: Sequence[Seen], rows: int) -> list[Seen]:
    """At most `rows` of `seen`, evenly spread, always the first and the last."""
    if len(seen) <= rows:
        return list(seen)
    step = (len(seen) - 1) / (rows - 1)
    return [seen[round(index * step)] for index in range(rows)]


def _rate(side: RateView) -> str:
    rate = "—" if side.rate is None else f"{100 * side.rate:.1f}%"
    return f"{rate} [{100 * side.low:.1f}, {100 * side.high:.1f}] of {side.requests:,.0f} requests"
