"""Judging one tick's measurements and webhook answers into check records and failures.

This is the engine's hot path (every judged tick of every Canary builds a record per check), so
what depends on the spec alone (which checks count, each threshold's text, the step length) is
worked out once per spec object and reused, and records are built as plain dicts handed to
`records.trusted`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from canary.api.metrics import MetricCheck, MetricMode
from canary.api.spec import CanarySpec, Webhook, WebhookType
from canary.api.status import CanaryStatus, CheckResult, MeasurementKind, Verdict
from canary.engine import judge, records
from canary.engine.actions import Notify
from canary.engine.tick import Tick

_FAIL, _PASS, _INCONCLUSIVE = Verdict.FAIL, Verdict.PASS, Verdict.INCONCLUSIVE
_VALUE = MeasurementKind.VALUE


@dataclass(slots=True)
class Checked:
    status: CanaryStatus
    notices: tuple[Notify, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    # (metric, its threshold as text, whether it counts), in the spec's order.
    metrics: tuple[tuple[MetricCheck, str, bool], ...]
    webhooks: tuple[Webhook, ...]
    step_interval: float
    # The names whose latest result must be a pass for a step to pass.
    required: tuple[str, ...]


# Keyed by id(spec), holding the spec itself so the id cannot be reused while the entry lives.
_plans: dict[int, tuple[CanarySpec, _Plan]] = {}
_PLAN_CACHE_LIMIT = 4096


def _plan(spec: CanarySpec) -> _Plan:
    cached = _plans.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    analysis = spec.analysis
    plan = _Plan(
        metrics=tuple(
            (m, m.threshold_range.describe(), m.mode is MetricMode.ENFORCE)
            for m in analysis.metrics
        ),
        webhooks=tuple(analysis.webhooks),
        step_interval=analysis.interval_seconds,
        required=tuple(m.name for m in analysis.metrics if m.mode is MetricMode.ENFORCE)
        + tuple(h.name for h in analysis.webhooks if h.type is WebhookType.ROLLOUT),
    )
    if len(_plans) >= _PLAN_CACHE_LIMIT:
        _plans.clear()
    _plans[id(spec)] = (spec, plan)
    return plan


def run(tick: Tick, *, gate_type: WebhookType) -> Checked:
    """Judge what this tick measured; count enforced failures; record every result.

    Only checks the spec still declares are judged, and a result is stamped with the current
    revision and step, so a pass earned by one revision never counts for another.
    """
    status, seen, now = tick.status, tick.seen, tick.now
    if not seen.measurements and not seen.gates:
        # Most ticks between checks: nothing was measured, so there is nothing to judge.
        return Checked(status=status, notices=())
    plan = _plan(tick.spec)
    waited = tick.since(status.data_wait_from or status.step_started_at)
    revision, step, weight = seen.revision, status.step, status.canary_weight
    results: list[CheckResult] = []
    notices: list[Notify] = []
    failures = 0
    measurements = seen.measurements
    for metric, threshold, counted in plan.metrics:
        measurement = measurements.get(metric.name)
        if measurement is None:
            continue
        judged = judge.metric(metric, measurement, waited=waited, step_interval=plan.step_interval)
        verdict = judged.verdict
        results.append(
            records.trusted(
                {
                    "name": metric.name,
                    "kind": measurement.kind,
                    "value": measurement.value,
                    "samples": measurement.samples,
                    "query": measurement.query,
                    "threshold": threshold,
                    "verdict": verdict,
                    "passed": None if verdict is _INCONCLUSIVE else verdict is _PASS,
                    "counted": counted,
                    "message": judged.message,
                    "revision": revision,
                    "step": step,
                    "weight": weight,
                    "at": now,
                }
            )
        )
        if verdict is _FAIL and counted:
            failures += 1
            notices.append(
                Notify(
                    reason="MetricFailed" if measurement.kind is _VALUE else "MetricNoData",
                    message=f"{metric.name} at weight {weight}: {judged.message}",
                    warning=True,
                )
            )
    for hook in plan.webhooks:
        answer = seen.gates.get(hook.name)
        if hook.type is not gate_type or answer is None:
            continue
        judged = judge.gate(answer.passed, answer.message)
        results.append(records.trusted(_gate_record(hook, answer.passed, judged, tick)))
        if judged.verdict is _FAIL:
            failures += 1
            notices.append(
                Notify(
                    reason="WebhookFailed",
                    message=f"{hook.type} webhook {hook.name}: {judged.message}",
                    warning=True,
                )
            )
    if not results:
        return Checked(status=status, notices=())
    status = records.evolve(
        status,
        {
            "failed_checks": status.failed_checks + failures,
            "last_check_at": now,
            "checks": records.with_latest(status.checks, results),
            "history": records.appended(status.history, results),
        },
    )
    return Checked(status=status, notices=tuple(notices) if notices else ())


def _gate_record(
    hook: Webhook, passed: bool, judged: judge.Judgement, tick: Tick
) -> dict[str, Any]:
    return {
        "name": hook.name,
        "kind": _VALUE,
        "value": 1.0 if passed else 0.0,
        "samples": None,
        "query": hook.url,
        "threshold": "passed",
        "verdict": judged.verdict,
        "passed": judged.verdict is _PASS,
        "counted": True,
        "message": judged.message,
        "revision": tick.seen.revision,
        "step": tick.status.step,
        "weight": tick.status.canary_weight,
        "at": tick.now,
    }


def step_passed(tick: Tick) -> bool:
    """Every enforced check of this step and revision passed at its latest run.

    Observe-mode metrics never hold a step back (dry run): their verdicts are reported only.
    """
    status = tick.status
    step, revision = status.step, status.revision
    passed = {
        check.name
        for check in status.checks
        if check.verdict is _PASS and check.step == step and check.revision == revision
    }
    return all(name in passed for name in _plan(tick.spec).required)
