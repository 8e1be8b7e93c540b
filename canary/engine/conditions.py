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
DRIFTED = "WeightsDrifted"


def with_condition(
    conditions: tuple[Condition, ...],
    *,
    type: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    now: datetime,
) -> tuple[Condition, ...]:
    # Plain loops rather than generators: this runs on every phase change of every Canary.
    current: Condition | None = None
    others: list[Condition] = []
    for condition in conditions:
        if condition.type != type:
            others.append(condition)
        elif current is None:
            current = condition
    since = now
    # Its fields read once, then dict lookups: a field read through the model costs several.
    held = None if current is None else current.__dict__
    if held is not None and held["status"] == status:
        if held["reason"] == reason and held["message"] == message:
            return conditions
        # The transition time marks a change of status, not of wording (the API convention).
        since = held["last_transition_time"]
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
    others.append(updated)
    return tuple(others)


def is_true(conditions: tuple[Condition, ...], type: str) -> bool:
    if not conditions:
        return False
    # Asked on every settled tick (is the route drifted?), while a status's conditions change
    # only with its phase and are shared, as one tuple, by every status copied from it: the
    # answer is worked out once per tuple (a Condition's field costs several plain slots).
    cached = _true_types.get(id(conditions))
    if cached is None or cached[0] is not conditions:
        if len(_true_types) >= _CACHE_LIMIT:
            _true_types.clear()
        true = frozenset(c.type for c in conditions if c.status == "True")
        cached = _true_types[id(conditions)] = (conditions, true)
    return type in cached[1]


# Keyed by id(conditions), holding the tuple itself so the id cannot be reused while it lives.
_true_types: dict[int, tuple[tuple[Condition, ...], frozenset[str]]] = {}
_CACHE_LIMIT = 4096
