"""Gates that hold a rollout until they say yes, and hooks that can stop it (Flagger's types).

- confirm-rollout (before anything moves), confirm-traffic-increase (before each step's weight
  goes up) and confirm-promotion (before the promotion): the rollout waits, and nothing is
  counted against it. While it waits, `status.waitingFor` names the gate and the `Waiting`
  condition is True, so `kubectl get` and a pipeline see why nothing moves; the metric checks
  and rollout hooks of a live step keep running meanwhile, as Flagger keeps them.
  A gate waits as long as it takes: the phase's deadline does not run while it is closed.
- rollback: asked at every check while the rollout initializes or progresses; a yes rolls back
  at once (someone, or something, pulled the cord).

Answers are kept as check records that never count (threshold "confirmed"), and only when one
changes, so `canary explain` shows each gate's answer without one record per tick of waiting.
A gate opens on answers from this tick (`wanted` asks each one when it matters), except
confirm-rollout, which is asked before the pre-rollout hooks and whose yes is read back from its
record (it must hold for this revision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from canary.api.spec import Webhook
from canary.api.status import CanaryStatus, CheckResult, MeasurementKind, Verdict
from canary.engine import conditions, records
from canary.engine.actions import Notify
from canary.engine.tick import Tick

CONFIRMED = "confirmed"
ROLLBACK_ASKED = "no rollback asked"


@dataclass(frozen=True, slots=True)
class Gate:
    open: bool
    # Status updates: the gate's changed answers, and waitingFor with the Waiting condition.
    updates: dict[str, Any] = field(default_factory=dict)
    notices: tuple[Notify, ...] = ()


def confirmed_before(status: CanaryStatus, hooks: tuple[Webhook, ...]) -> bool:
    """Every hook's latest recorded answer is a yes for this revision."""
    latest = {check.name: check for check in status.checks if check.threshold == CONFIRMED}
    return all(
        (record := latest.get(hook.name)) is not None
        and record.verdict is Verdict.PASS
        and record.revision == status.revision
        for hook in hooks
    )


def confirm(
    tick: Tick, hooks: tuple[Webhook, ...], *, kind: str, from_records: bool = False
) -> Gate:
    """Whether every hook of `hooks` (all of one `kind`) says yes; what waiting on it looks like.

    `from_records`: a hook not asked this tick counts with its recorded answer.
    """
    if not hooks:
        return Gate(True)
    status, seen = tick.status, tick.seen
    fresh = [
        _record(tick, hook, answer.passed, answer.message, threshold=CONFIRMED)
        for hook in hooks
        if (answer := seen.gates.get(hook.name)) is not None
    ]
    updates = _changed(status, fresh)
    answered = {record.name: record.verdict is Verdict.PASS for record in fresh}
    if from_records:
        recorded = confirmed_before(status, tuple(h for h in hooks if h.name not in answered))
        closed = [name for name, yes in answered.items() if not yes]
        if not closed and recorded:
            return Gate(True, {**updates, **opened(tick)})
    else:
        closed = [hook.name for hook in hooks if not answered.get(hook.name, False)]
        if not closed:
            return Gate(True, {**updates, **opened(tick)})
    names = ", ".join(closed) or ", ".join(hook.name for hook in hooks)
    what = f"{kind} webhook {names}"
    return waiting(tick, what, updates)


def rollback_asked(tick: Tick, hooks: tuple[Webhook, ...]) -> tuple[str, dict[str, Any]] | None:
    """Why the rollout must roll back now (a rollback hook said yes), with its record."""
    for hook in hooks:
        answer = tick.seen.gates.get(hook.name)
        if answer is not None and answer.passed:
            record = _record(
                tick, hook, False, f"answered yes ({answer.message})", threshold=ROLLBACK_ASKED
            )
            why = f"rollback webhook {hook.name} answered yes ({answer.message})"
            return why, _changed(tick.status, [record])
    return None


def waiting(tick: Tick, what: str, updates: dict[str, Any], *, message: str | None = None) -> Gate:
    """Held by the gate `what`: waitingFor and the Waiting condition, said once."""
    status = tick.status
    message = message or f"waiting for {what} to say yes"
    if status.waiting_for == what and conditions.is_true(status.conditions, conditions.WAITING):
        return Gate(False, updates)
    updates = {
        **updates,
        "waiting_for": what,
        "conditions": conditions.with_condition(
            status.conditions,
            type=conditions.WAITING,
            status="True",
            reason="GateClosed",
            message=message,
            now=tick.now,
        ),
    }
    return Gate(False, updates, (Notify("Waiting", message),))


def opened(tick: Tick) -> dict[str, Any]:
    """The updates that say no gate holds the rollout any more (empty when none did).

    A gate waits as long as it takes (a person may answer in an hour), so its wait is not the
    phase's: the phase's deadline starts again when the gate opens.
    """
    status = tick.status
    if not status.waiting_for:
        return {}
    return {
        "waiting_for": "",
        "deadline_at": tick.now + timedelta(seconds=tick.plan.progress_deadline),
        "conditions": conditions.with_condition(
            status.conditions,
            type=conditions.WAITING,
            status="False",
            reason="GateOpen",
            message="",
            now=tick.now,
        ),
    }


def _record(
    tick: Tick, hook: Webhook, passed: bool, message: str, *, threshold: str
) -> CheckResult:
    verdict = Verdict.PASS if passed else Verdict.FAIL
    return CheckResult(
        name=hook.name,
        kind=MeasurementKind.VALUE,
        value=1.0 if passed else 0.0,
        query=hook.url,
        threshold=threshold,
        verdict=verdict,
        passed=passed,
        counted=False,
        message=message,
        revision=tick.seen.revision,
        step=tick.status.step,
        weight=tick.status.canary_weight,
        at=tick.now,
    )


def _changed(status: CanaryStatus, fresh: list[CheckResult]) -> dict[str, Any]:
    """`fresh` records whose answer differs from the latest one kept, as status updates."""
    latest = {check.name: check for check in status.checks}
    new = []
    for record in fresh:
        old = latest.get(record.name)
        if (
            old is None
            or old.verdict is not record.verdict
            or old.revision != record.revision
            or old.step != record.step
        ):
            new.append(record)
    if not new:
        return {}
    names = [record.name for record in new]
    return {
        "checks": records.with_latest(status.checks, new, names),
        "history": records.appended(status.history, new),
    }
