"""Kubernetes-convention conditions: one per type, its transition time kept while unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from canary.api.status import Condition
from canary.engine import records

_FIELDS = set(Condition.model_fields)

INVALID_SPEC = "InvalidSpec"
PROGRESSING = "Progressing"
SUSPENDED = "Suspended"
ROLLBACK_VERIFIED = "RollbackVerified"


def with_condition(
    conditions: tuple[Condition, ...],
    *,
    type: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    now: datetime,
) -> tuple[Condition, ...]:
    current = next((c for c in conditions if c.type == type), None)
    if current is not None and (current.status, current.reason, current.message) == (
        status,
        reason,
        message,
    ):
        return conditions
    # The transition time marks a change of status, not of wording (the API convention).
    since = current.last_transition_time if current and current.status == status else now
    # Built without validation, like the engine's check records: every value is the engine's own.
    updated = records.built(
        Condition,
        {
            "type": type,
            "status": status,
            "reason": reason,
            "message": message,
            "last_transition_time": since,
        },
        _FIELDS,
    )
    return (*(c for c in conditions if c.type != type), updated)


def is_true(conditions: tuple[Condition, ...], type: str) -> bool:
    return any(c.type == type and c.status == "True" for c in conditions)
