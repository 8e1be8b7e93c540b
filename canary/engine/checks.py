"""Judging one tick's measurements and webhook answers into check records and failures.

What depends on the spec alone (which checks count, each threshold's text, the step length)
comes from the tick's plan (engine/plan.py); records are built by `records.built`, without
validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from canary.api.spec import Webhook
from canary.api.status import CheckResult, MeasurementKind, Verdict
from canary.engine import judge, records
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


def run(tick: Tick, *, gates: tuple[Webhook, ...]) -> Checked:
    """Judge what this tick measured and the answers of `gates`; count enforced failures.

    Only checks the spec still declares are judged, and a result is stamped with the current
    revision and step, so a pass earned by one revision never counts for another.
    """
    seen, now = tick.seen, tick.now
    measurements = seen.measurements
    if not measurements and not seen.gates:
        # Most ticks between checks: nothing was measured, so there is nothing to judge.
        return Checked({}, (), tick.status.failed_checks)
    status, plan = tick.status, tick.plan
    wait_from = status.data_wait_from or status.step_started_at
    waited = 0.0 if wait_from is None else (now - wait_from).total_seconds()
    revision, step, weight = seen.revision, status.step, status.canary_weight
    results: list[CheckResult] = []
    names: list[str] = []
    passing: list[str] = []
    notices: list[Notify] = []
    failures = 0
    for rule in plan.rules:
        name = rule.name
        measurement = measurements.get(name)
        if measurement is None:
            continue
        judged = judge.verdict(rule, measurement, waited=waited, step_interval=plan.interval)
        verdict = judged.verdict
        # None while inconclusive, as on the record; False for a failure.
        passed = None if verdict is Verdict.INCONCLUSIVE else verdict is Verdict.PASS
        names.append(name)
        if passed:
            passing.append(name)
        results.append(
            records.built(
                CheckResult,
                {
                    "name": name,
                    "kind": measurement.kind,
                    "value": _recorded(measurement.value),
                    "samples": measurement.samples,
                    "query": measurement.query,
                    "threshold": rule.threshold,
                    "verdict": verdict,
                    "passed": passed,
                    "counted": rule.enforced,
                    "message": judged.message,
                    "spans": measurement.spans,
                    "comparison": None,
                    "revision": revision,
                    "step": step,
                    "weight": weight,
                    "at": now,
                },
            )
        )
        if passed is False and rule.enforced:
            failures += 1
            notices.append(
                Notify(
                    reason="MetricFailed"
                    if measurement.kind is MeasurementKind.VALUE
                    else "MetricNoData",
                    message=f"{name} at weight {weight}: {judged.message}",
                    warning=True,
                )
            )
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
    updates = {
        "failed_checks": failed_checks,
        "last_check_at": now,
        "checks": latest,
        "history": records.appended(status.history, fresh),
    }
    # When this tick's results are every latest one, whether the step passed needs no record
    # read; they judged the status's own revision when it is the one observed.
    known = len(latest) == len(fresh) and revision == status.revision
    return Checked(
        updates,
        tuple(notices) if notices else (),
        failed_checks,
        passing if known else None,
    )


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
