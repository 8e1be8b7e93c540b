"""Judging one tick's measurements and webhook answers into check records and failures.

What depends on the spec alone (which checks count, each threshold's text, the step length)
comes from the tick's plan (engine/plan.py); records are built by `records.built`, without
validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from canary.api.comparison import ComparisonVerdict, SequentialState
from canary.api.spec import Webhook
from canary.api.status import CheckResult, MeasurementKind, Verdict
from canary.engine import comparing, judge, records
from canary.engine.actions import Notify
from canary.engine.tick import Tick


@dataclass(slots=True)
class Checked:
    # What judging changes in the status (failed_checks, last_check_at, checks, history), empty
    # when nothing was judged. Handed to the status the tick ends with rather than applied here:
    # a tick that judges and then changes step or phase makes one copy of the status, not two.
    updates: dict[str, Any]
    notices: tuple[Notify, ...]
    # The rollout's failed checks so far, this tick's included: status.failed_checks.
    failed_checks: int
    # The names whose latest result passed for this step and revision, when this tick's results
    # replaced every latest one (the usual judged tick); None when the records must be read.
    # A list: most judged ticks end before their step does, and never ask.
    passed: list[str] | None = None
    # "<check>: <why>" when an enforced check proved the canary worse than stable this tick:
    # the rollout rolls back at once, whatever the threshold of failed checks.
    regression: str = ""
    # Every enforced comparing check was judged this tick and has shown equivalence: with
    # analysis.advanceEarly the step may end before its interval.
    equivalent: bool = False


def run(tick: Tick, *, gates: tuple[Webhook, ...]) -> Checked:
    """Judge what this tick measured and the answers of `gates`; count enforced failures.

    Only checks the spec still declares are judged, and a result is stamped with the current
    revision and step, so a pass earned by one revision never counts for another.
    """
    seen, now = tick.seen, tick.now
    measurements, comparisons = seen.measurements, seen.comparisons
    if not measurements and not comparisons and not seen.gates:
        # Most ticks between checks: nothing was measured, so there is nothing to judge.
        return Checked({}, (), tick.status.failed_checks)
    status, plan = tick.status, tick.plan
    wait_from = status.data_wait_from or status.step_started_at
    waited = 0.0 if wait_from is None else (now - wait_from).total_seconds()
    revision, weight = seen.revision, status.canary_weight
    results: list[CheckResult] = []
    names: list[str] = []
    passing: list[str] = []
    notices: list[Notify] = []
    failures = 0
    tests: dict[str, SequentialState] = {}
    regression = ""
    for rule in plan.rules:
        one = _metric(rule, tick, waited)
        if one is None:
            continue
        record, compared = one
        if compared is not None:
            tests[rule.name] = compared.state
        names.append(rule.name)
        verdict = record.verdict
        if verdict is Verdict.PASS:
            passing.append(rule.name)
        results.append(record)
        if verdict is Verdict.FAIL and rule.enforced:
            failures += 1
            notice, proof = _failure(rule, record, compared, weight)
            notices.append(notice)
            regression = regression or proof
    for hook in gates:
        answer = seen.gates.get(hook.name)
        if answer is None:
            continue
        judged = judge.gate(answer.passed, answer.message)
        names.append(hook.name)
        if judged.verdict is Verdict.PASS:
            passing.append(hook.name)
        results.append(_gate_record(hook, answer.passed, judged, tick))
        if judged.verdict is Verdict.FAIL:
            failures += 1
            notices.append(
                Notify(
                    reason="WebhookFailed",
                    message=f"{hook.type} webhook {hook.name}: {judged.message}",
                    warning=True,
                )
            )
    failed_checks = status.failed_checks + failures
    if not results:
        return Checked({}, (), failed_checks)
    # One tuple of this tick's records, shared by the latest results and the history.
    fresh = tuple(results)
    latest = records.with_latest(status.checks, fresh, names)
    updates: dict[str, Any] = {
        "failed_checks": failed_checks,
        "last_check_at": now,
        "checks": latest,
        "history": records.appended(status.history, fresh),
    }
    if tests:
        updates["sequential"] = comparing.stored(status, tests, plan.rules)
    # When this tick's results are every latest one, whether the step passed needs no record
    # read; they judged the status's own revision when it is the one observed.
    known = len(latest) == len(fresh) and revision == status.revision
    return Checked(
        updates,
        tuple(notices) if notices else (),
        failed_checks,
        passing if known else None,
        regression,
        comparing.all_equivalent(tests, plan.rules) if tests else False,
    )


def _worst(first: judge.Judgement, second: judge.Judgement) -> judge.Judgement:
    """A check judged on a range and a comparison: either failing fails, either waiting waits."""
    message = "; ".join(part.message for part in (first, second) if part.message)
    for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        if verdict in (first.verdict, second.verdict):
            return judge.Judgement(verdict, message)
    return judge.Judgement(Verdict.PASS, message)


def _failure(
    rule: judge.Rule, record: CheckResult, compared: comparing.Compared | None, weight: int
) -> tuple[Notify, str]:
    """A failed enforced check's Event, and "<check>: <why>" when it proved a regression (the
    proof's own words: a range judged beside it, passing or waiting for minRequests, is not why
    the rollout rolls back)."""
    proven = _proven(compared)
    notice = Notify(
        reason=_reason(record, compared, proven),
        message=f"{rule.name} at weight {weight}: {record.message}",
        warning=True,
    )
    if proven:
        assert compared is not None
        return notice, f"{rule.name}: {compared.judgement.message}"
    return notice, ""


def _proven(compared: comparing.Compared | None) -> bool:
    """The check's comparison proved a regression (and so failed)."""
    return (
        compared is not None
        and compared.record.verdict is ComparisonVerdict.REGRESSION
        and compared.judgement.verdict is Verdict.FAIL
    )


def _reason(record: CheckResult, compared: comparing.Compared | None, proven: bool) -> str:
    """The Event's reason for a failed check."""
    if proven:
        return "RegressionProven"
    if record.kind is not MeasurementKind.VALUE or (
        compared is not None and compared.judgement.verdict is Verdict.FAIL
    ):
        return "MetricNoData"
    return "MetricFailed"


def _metric(
    rule: judge.Rule, tick: Tick, waited: float
) -> tuple[CheckResult, comparing.Compared | None] | None:
    """One metric check judged on this tick's measurement and counts, its record and its
    comparison; None when it has neither."""
    seen, interval = tick.seen, tick.plan.interval
    measurement = seen.measurements.get(rule.name)
    compared = None
    if rule.compare is not None:
        reading = seen.comparisons.get(rule.name)
        if reading is not None:
            compared = comparing.judged(
                rule, rule.compare, reading, tick.status, waited=waited, step_interval=interval
            )
    if measurement is not None and rule.has_range:
        judged = judge.verdict(rule, measurement, waited=waited, step_interval=interval)
        if compared is not None:
            judged = _worst(judged, compared.judgement)
        kind, value = measurement.kind, _recorded(measurement.value)
        samples, query, spans = measurement.samples, measurement.query, measurement.spans
    elif compared is not None:
        judged = compared.judgement
        kind, value, samples = compared.kind, compared.value, compared.samples
        query, spans = compared.query, None
    else:
        return None
    verdict = judged.verdict
    record = records.built(
        CheckResult,
        {
            "name": rule.name,
            "kind": kind,
            "value": value,
            "samples": samples,
            "query": query,
            "threshold": rule.described,
            "verdict": verdict,
            # None while inconclusive; False for a failure.
            "passed": None if verdict is Verdict.INCONCLUSIVE else verdict is Verdict.PASS,
            "counted": rule.enforced,
            "message": judged.message,
            "spans": spans,
            "comparison": compared.record if compared is not None else None,
            "revision": seen.revision,
            "step": tick.status.step,
            "weight": tick.status.canary_weight,
            "at": tick.now,
        },
    )
    return record, compared


def _recorded(value: float | None) -> float | None:
    # JSON, so the API server, cannot hold +Inf or -Inf: the record keeps null and the judge's
    # message names the infinity ("+Inf is outside <= 500").
    return value if value is None or math.isfinite(value) else None


def _gate_record(hook: Webhook, passed: bool, judged: judge.Judgement, tick: Tick) -> CheckResult:
    return records.built(
        CheckResult,
        {
            "name": hook.name,
            "kind": MeasurementKind.VALUE,
            "value": 1.0 if passed else 0.0,
            "samples": None,
            "query": hook.url,
            "threshold": "passed",
            "verdict": judged.verdict,
            "passed": judged.verdict is Verdict.PASS,
            "counted": True,
            "message": judged.message,
            "spans": None,
            "comparison": None,
            "revision": tick.seen.revision,
            "step": tick.status.step,
            "weight": tick.status.canary_weight,
            "at": tick.now,
        },
    )


def step_passed(tick: Tick, checked: Checked | None = None) -> bool:
    """Every enforced check of this step and revision passed at its latest run.

    Observe-mode metrics never hold a step back (dry run): their verdicts are reported only.
    `checked`, this tick's judging (not yet in `tick.status`), answers without reading the
    records when it can.
    """
    status = tick.status
    latest: tuple[CheckResult, ...] = status.checks
    if checked is not None:
        if checked.passed is not None:
            return frozenset(checked.passed).issuperset(tick.plan.required)
        latest = checked.updates.get("checks", latest)
    step, revision = status.step, status.revision
    passed = {
        check.name
        for check in latest
        if check.verdict is Verdict.PASS and check.step == step and check.revision == revision
    }
    return all(name in passed for name in tick.plan.required)
