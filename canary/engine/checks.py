"""Judging one tick's measurements and webhook answers into check records and failures."""

from __future__ import annotations

from dataclasses import dataclass

from canary.api.metrics import MetricMode
from canary.api.spec import WebhookType
from canary.api.status import CanaryStatus, CheckResult, MeasurementKind, Verdict
from canary.engine import judge, records
from canary.engine.actions import Notify
from canary.engine.tick import Tick


@dataclass(frozen=True, slots=True)
class Checked:
    status: CanaryStatus
    notices: tuple[Notify, ...]


def run(tick: Tick, *, gate_type: WebhookType) -> Checked:
    """Judge what this tick measured; count enforced failures; record every result.

    Only checks the spec still declares are judged, and a result is stamped with the current
    revision and step, so a pass earned by one revision never counts for another.
    """
    status, seen = tick.status, tick.seen
    waited = tick.since(status.step_started_at)
    step_interval = tick.spec.analysis.interval_seconds
    results: list[CheckResult] = []
    notices: list[Notify] = []
    failures = 0
    for metric in tick.spec.analysis.metrics:
        measurement = seen.measurements.get(metric.name)
        if measurement is None:
            continue
        verdict = judge.metric(metric, measurement, waited=waited, step_interval=step_interval)
        counted = metric.mode is MetricMode.ENFORCE
        results.append(
            records.check_result(
                name=metric.name,
                kind=measurement.kind,
                value=measurement.value,
                samples=measurement.samples,
                query=measurement.query,
                threshold=metric.threshold_range.describe(),
                verdict=verdict.verdict,
                counted=counted,
                message=verdict.message,
                revision=seen.revision,
                step=status.step,
                weight=status.canary_weight,
                at=tick.now,
            )
        )
        if verdict.verdict is Verdict.FAIL and counted:
            failures += 1
            no_data = measurement.kind is not MeasurementKind.VALUE
            notices.append(
                Notify(
                    reason="MetricNoData" if no_data else "MetricFailed",
                    message=f"{metric.name} at weight {status.canary_weight}: {verdict.message}",
                    warning=True,
                )
            )
    for hook in tick.spec.analysis.webhooks:
        answer = seen.gates.get(hook.name)
        if hook.type is not gate_type or answer is None:
            continue
        verdict = judge.gate(answer.passed, answer.message)
        results.append(
            records.check_result(
                name=hook.name,
                kind=MeasurementKind.VALUE,
                value=1.0 if answer.passed else 0.0,
                samples=None,
                query=hook.url,
                threshold="passed",
                verdict=verdict.verdict,
                counted=True,
                message=verdict.message,
                revision=seen.revision,
                step=status.step,
                weight=status.canary_weight,
                at=tick.now,
            )
        )
        if verdict.verdict is Verdict.FAIL:
            failures += 1
            notices.append(
                Notify(
                    reason="WebhookFailed",
                    message=f"{hook.type} webhook {hook.name}: {verdict.message}",
                    warning=True,
                )
            )
    if not results:
        return Checked(status=status, notices=())
    status = status.model_copy(
        update={
            "failed_checks": status.failed_checks + failures,
            "last_check_at": tick.now,
            "checks": records.with_latest(status.checks, results),
            "history": records.appended(status.history, results),
        }
    )
    return Checked(status=status, notices=tuple(notices))


def step_passed(tick: Tick) -> bool:
    """Every enforced check of this step and revision passed at its latest run.

    Observe-mode metrics never hold a step back (dry run): their verdicts are reported only.
    """
    status = tick.status
    latest = {check.name: check for check in status.checks}
    required = [m.name for m in tick.spec.analysis.metrics if m.mode is MetricMode.ENFORCE]
    required += [h.name for h in tick.spec.analysis.webhooks if h.type is WebhookType.ROLLOUT]
    for name in required:
        check = latest.get(name)
        if (
            check is None
            or check.verdict is not Verdict.PASS
            or check.step != status.step
            or check.revision != status.revision
        ):
            return False
    return True
