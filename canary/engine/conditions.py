"""Kubernetes-convention conditions: one per type, its transition time kept while unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from canary.api.status import Condition
from canary.engine import records

INVALID_SPEC = "InvalidSpec"
PROGRESSING = "Progressing"
SUSPENDED = "Suspended"
ROLLBACK_VERIFIED = "RollbackVerified"
DRIFTED = "WeightsDrifted"
# The Canary became invalid after weights moved: whether 100% went back to the stable subset.
STABLE_RESTORED = "StableRestored"
# A tick raised: the error, until a tick finishes again.
TICK_FAILED = "TickFailed"
# The stored status does not parse: nothing is judged or written until it is fixed or retried.
STATUS_UNREADABLE = "StatusUnreadable"


def with_condition(
    conditions: tuple[Condition, ...],
    *,
    type: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    now: datetime,
) -> tuple[Condition, ...]:
    current: Condition | None = None
    others: list[Condition] = []
    for condition in conditions:
        if condition.type != type:
            others.append(condition)
        elif current is None:
            current = condition
    since = now
    if current is not None and current.status == status:
        if current.reason == reason and current.message == message:
            return conditions
        # The transition time marks a change of status, not of wording (the API convention).
        since = current.last_transition_time
    updated = records.built(
        Condition,
        {
            "type": type,
            "status": status,
            "reason": reason,
            "message": message,
            "last_transition_time": since,
        },
    )
    others.append(updated)
    return tuple(others)


def is_true(conditions: tuple[Condition, ...], type: str) -> bool:
    return any(condition.type == type and condition.status == "True" for condition in conditions)


PROMOTED = "Promoted"
# A gate (a confirm-* webhook) holds the rollout; status.waitingFor names it.
WAITING = "Waiting"
# Whether the Canary's chat notifications get through (False names the provider and why).
NOTIFIED = "Notified"
