"""A tick that raised: visible in the status, and bounded by its phase's deadline.

A bug met by one Canary, or a value the schema let through that nothing downstream can handle,
makes its tick raise. The reconciler catches it, so the other Canaries tick on, and asks this
module what to leave behind. The stored status is all there is to go on, since the tick's own
observation or decision is what failed:
- the `TickFailed` condition carries the error, with one warning event for each new error;
- once a non-terminal phase's deadline has passed, the Canary is rolled back as any stuck phase
  is: faults cleared, 100% to the stable subset, `RollingBack` (or `Failed`, rollback
  unverified, when the phase's deadline action is `fail`);
- while ticks keep failing in `RollingBack`, the revert is sent again on every tick
  (level-triggered, like every weight), and when that phase's own deadline passes the rollout
  ends `Failed` with the rollback unverified.
A tick that finishes again sets the condition False (`recovered`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from canary.api.status import TERMINAL_PHASES, CanaryStatus, Phase
from canary.engine import conditions, records
from canary.engine.actions import Action, ClearFaults, Decision, Notify, SetWeights

# A status message is read by people in `kubectl get`; a traceback's last line is enough.
MESSAGE_LIMIT = 400


def tick_failed(
    status: CanaryStatus, error: str, now: datetime, *, phase_deadline: timedelta | None
) -> Decision:
    """What a failed tick leaves; `phase_deadline` is how long a phase entered now may last
    (None when the spec cannot tell, which leaves a RollingBack entered here without one)."""
    error = error if len(error) <= MESSAGE_LIMIT else error[: MESSAGE_LIMIT - 1] + "…"
    updated = conditions.with_condition(
        status.conditions,
        type=conditions.TICK_FAILED,
        status="True",
        reason="TickFailed",
        message=error,
        now=now,
    )
    actions: list[Action] = []
    if updated is not status.conditions:
        actions.append(Notify("TickFailed", f"a tick failed: {error}", warning=True))
    values: dict[str, Any] = {"conditions": updated}
    phase = status.phase
    revert: tuple[Action, ...] = ()
    if status.stable_subset and status.canary_subset:
        revert = (
            ClearFaults("ticks are failing"),
            SetWeights(status.stable_subset, status.canary_subset, 0),
        )
    overdue = (
        phase is not None
        and phase not in TERMINAL_PHASES
        and status.deadline_at is not None
        and now >= status.deadline_at
    )
    if phase is Phase.ROLLING_BACK:
        actions.extend(revert)
        if overdue:
            values.update(
                _failed(status, updated, now, f"RollingBack passed its deadline: {error}")
            )
            actions.append(Notify("RollbackUnverified", values["message"], warning=True))
    elif overdue and status.deadline_action == "rollback" and revert:
        why = f"{phase} passed its deadline while ticks kept failing ({error})"
        message = f"{why}: sending 100% back to {status.stable_subset}"
        values.update(
            {
                "phase": Phase.ROLLING_BACK,
                "message": message,
                "last_transition_time": now,
                "deadline_at": None if phase_deadline is None else now + phase_deadline,
                "deadline_action": "fail",
                "canary_weight": 0,
                "conditions": conditions.with_condition(
                    updated,
                    type=conditions.PROGRESSING,
                    status="True",
                    reason="RollingBack",
                    message=message,
                    now=now,
                ),
            }
        )
        actions.extend((Notify("RollingBack", message, warning=True), *revert))
    elif overdue:
        values.update(_failed(status, updated, now, f"{phase} passed its deadline: {error}"))
        actions.append(Notify("RollbackUnverified", values["message"], warning=True))
    if len(values) == 1 and updated is status.conditions:
        return Decision(status=status, actions=tuple(actions))
    return Decision(status=records.evolve(status, values), actions=tuple(actions))


def _failed(status: CanaryStatus, base: tuple[Any, ...], now: datetime, why: str) -> dict[str, Any]:
    message = f"{why}: the live route may still send traffic to {status.canary_subset}"
    updated = base
    for type_, reason in (
        (conditions.ROLLBACK_VERIFIED, "RollbackUnverified"),
        (conditions.PROGRESSING, "RollbackUnverified"),
        (conditions.PROMOTED, "Failed"),
    ):
        updated = conditions.with_condition(
            updated, type=type_, status="False", reason=reason, message=message, now=now
        )
    return {
        "phase": Phase.FAILED,
        "message": message,
        "last_transition_time": now,
        "deadline_at": None,
        "deadline_action": None,
        "conditions": updated,
    }


def recovered(status: CanaryStatus, now: datetime) -> CanaryStatus:
    """The status with `TickFailed` set False, once a tick finished again."""
    if not conditions.is_true(status.conditions, conditions.TICK_FAILED):
        return status
    updated = conditions.with_condition(
        status.conditions,
        type=conditions.TICK_FAILED,
        status="False",
        reason="TickSucceeded",
        message="",
        now=now,
    )
    return records.evolve(status, {"conditions": updated})
