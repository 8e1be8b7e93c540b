"""Judging the checks that compare the canary with stable: the sequential test on each judged
tick, its state carried in the status, its verdict in the check's record.

The statistics are engine/sequential.py's; this module decides which window a reading counts
(so no request is counted twice, across restarts and suspensions too) and what a reading that
cannot be counted means (no data, never a pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from canary.api.comparison import (
    Comparison,
    ComparisonRecord,
    ComparisonVerdict,
    RateEstimate,
    SequentialState,
)
from canary.api.metrics import NoDataPolicy
from canary.api.status import CanaryStatus, MeasurementKind, Verdict
from canary.engine import judge, sequential
from canary.engine.observation import CountsReading, Measurement


def state_of(status: CanaryStatus, name: str) -> SequentialState | None:
    """The check's test in this rollout: the stored one for the status's revision, if any."""
    for state in status.sequential:
        if state.name == name and state.revision == status.revision:
            return state
    return None


def window_start(status: CanaryStatus, name: str) -> datetime | None:
    """Where the counts of check `name`'s next reading must start; None while no step is live.

    The step's clock start, or the window the test already counts in this step. When the step's
    clock started again after that window began (drift, or a suspension lifted: resuming shifts
    every stored time forward by the time spent frozen, so the shifted start may lie before the
    last reading), the new window starts at the last judged tick, so time already counted is
    never counted again (the test's bound assumes each request is seen once).
    """
    started = status.step_started_at
    if started is None:
        return None
    state = state_of(status, name)
    if state is None or state.step != status.step or state.since is None:
        return started
    if state.since >= started:
        return state.since
    last = status.last_check_at
    return started if last is None or last < started else last


@dataclass(frozen=True, slots=True)
class Compared:
    """One comparing check judged on one reading."""

    judgement: judge.Judgement
    record: ComparisonRecord
    # The test after this reading, to store; the stored one when the reading was refused.
    state: SequentialState
    # The canary's requests in the step, as `samples` on the check's record.
    samples: int | None
    # The canary's share of bad events in the rollout, in percent: the record's value.
    value: float | None
    kind: MeasurementKind
    # The canary's bad-events query, as the record's `query`.
    query: str


def judged(
    rule: judge.Rule,
    comparison: Comparison,
    reading: CountsReading,
    status: CanaryStatus,
    *,
    waited: float,
    step_interval: float,
) -> Compared:
    """The check's comparison after `reading`, taken `waited` seconds into the step.

    A proven regression fails; shown equivalence and a test not decided yet pass (a comparison
    holds a step back only by proof: the step's interval decides otherwise, and the test carries
    on into the next step). A count that cannot be read, or that the test refuses, is no data
    under the check's onNoData; a step in which the canary has served too few requests yet
    waits, up to the step's interval or noDataTimeout.
    """
    state = state_of(status, rule.name) or sequential.start(
        rule.name, revision=status.revision, comparison=comparison
    )
    wait_limit = rule.wait_limit(step_interval)
    query = reading.canary_bad.query
    sides = (
        ("canary requests", reading.canary_requests),
        ("canary bad events", reading.canary_bad),
        ("stable requests", reading.stable_requests),
        ("stable bad events", reading.stable_bad),
    )
    for what, measured in sides:
        if measured.kind is not MeasurementKind.VALUE or measured.value is None:
            why = f"{what}: {measured.message or measured.kind.value}"
            judgement = judge.missing(rule.on_no_data, why, waited=waited, wait_limit=wait_limit)
            record = sequential.record(state, message=why)
            return Compared(judgement, record, state, None, None, measured.kind, query)
    counts = sequential.Counts(
        canary_requests=_value(reading.canary_requests),
        canary_bad=_value(reading.canary_bad),
        stable_requests=_value(reading.stable_requests),
        stable_bad=_value(reading.stable_bad),
    )
    outcome = sequential.observe(state, step=status.step, since=reading.since, counts=counts)
    record, after = outcome.record, outcome.state
    samples = round(counts.canary_requests)
    value = 100.0 * after.canary_bad / after.canary_requests if after.canary_requests else None
    if record.message:
        judgement = judge.missing(
            rule.on_no_data, record.message, waited=waited, wait_limit=wait_limit
        )
        return Compared(judgement, record, after, samples, value, MeasurementKind.VALUE, query)
    return Compared(
        _verdict(rule, record, counts, waited=waited, wait_limit=wait_limit),
        record,
        after,
        samples,
        value,
        MeasurementKind.VALUE,
        query,
    )


def _verdict(
    rule: judge.Rule,
    record: ComparisonRecord,
    counts: sequential.Counts,
    *,
    waited: float,
    wait_limit: float,
) -> judge.Judgement:
    said = describe(record, rule.compare.min_effect if rule.compare else None)
    if record.verdict is ComparisonVerdict.REGRESSION:
        # Proof needs no minimum of requests: the bound holds at any number of them.
        return judge.Judgement(Verdict.FAIL, said)
    minimum = rule.min_requests or 1
    if counts.canary_requests < minimum:
        why = (
            f"{counts.canary_requests:g} canary requests in this step, fewer than "
            f"{'minRequests ' if rule.min_requests else ''}{minimum}"
        )
        # Too few requests yet is no evidence, not a broken query: the counts start at the
        # step's start, and the first scrapes of a step (or Envoy's histogram flush) may not
        # have landed. So it waits, whatever onNoData says, up to the step's interval (or
        # noDataTimeout), and fails only when the step ends without them.
        return judge.missing(NoDataPolicy.WAIT, why, waited=waited, wait_limit=wait_limit)
    return judge.Judgement(Verdict.PASS, said)


def describe(record: ComparisonRecord, min_effect: float | None = None) -> str:
    """The comparison in a line: "canary 4.1% [2.9, 5.6] vs stable 1.0% [0.8, 1.2], proven worse
    after 312 canary requests"."""
    sides = f"canary {_rate(record.canary)} vs stable {_rate(record.stable)}"
    after = record.decided_after
    counted = f"{after:,.0f} canary requests" if after is not None else ""
    if record.verdict is ComparisonVerdict.REGRESSION:
        return f"{sides}, proven worse after {counted}"
    if record.verdict is ComparisonVerdict.EQUIVALENT:
        within = f"less than {min_effect:g}x" if min_effect else "within minEffect of"
        return f"{sides}, shown {within} stable's after {counted}"
    return (
        f"{sides}, not decided (evidence of a regression {record.regression_evidence:.3g} "
        f"of {record.threshold:g} needed)"
    )


def _rate(estimate: RateEstimate) -> str:
    if estimate.rate is None:
        return "no requests yet"
    return f"{_percent(estimate.rate)}% [{_percent(estimate.low)}, {_percent(estimate.high)}]"


def _percent(fraction: float) -> str:
    shown = 100.0 * fraction
    return f"{shown:.1f}" if shown >= 1 or shown == 0 else f"{shown:.2f}"


def _value(measured: Measurement) -> float:
    assert measured.value is not None
    return measured.value


def stored(
    status: CanaryStatus, tests: Mapping[str, SequentialState], rules: tuple[judge.Rule, ...]
) -> tuple[SequentialState, ...]:
    """status.sequential after a judged tick, in the spec's order: the tests this tick carried
    on, and the rollout's others that the spec still compares. A test of another revision, or of
    a check that no longer compares, is dropped: it can never be carried on."""
    kept = {state.name: state for state in status.sequential if state.revision == status.revision}
    kept.update(tests)
    return tuple(
        kept[rule.name] for rule in rules if rule.compare is not None and rule.name in kept
    )


def all_equivalent(tests: Mapping[str, SequentialState], rules: tuple[judge.Rule, ...]) -> bool:
    """Every enforced comparing check was judged this tick and has shown equivalence."""
    enforced = [rule.name for rule in rules if rule.compare is not None and rule.enforced]
    return bool(enforced) and all(
        name in tests and tests[name].verdict is ComparisonVerdict.EQUIVALENT for name in enforced
    )
