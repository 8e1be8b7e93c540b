"""Check records, conditions and status copies, built without validation; the history kept bounded.

`decide` runs for every Canary on every tick, and a judged tick makes a record per check, often
a condition, and a copy of its status. Every value given here comes from an already-validated
spec or from the engine's own rules, so an instance is made by setting the four slots that
pydantic's `model_construct` and `model_copy` set, without their per-field work. Validating, or
`model_construct` and `model_copy` themselves, cost several times as much, and would take a third
of `decide`'s ticks per second (benchmarks/bench_decide.py). tests/unit/engine/test_records.py
holds what is built here equal to what pydantic's own constructors give.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from canary.api.status import HISTORY_LIMIT, CanaryStatus, CheckResult

M = TypeVar("M", bound=BaseModel)

# BaseModel's own slot descriptors, set directly: half the cost of object.__setattr__, which
# looks the name up on the class first.
_slots = BaseModel.__dict__
_set_dict = _slots["__dict__"].__set__
_set_fields_set = _slots["__pydantic_fields_set__"].__set__
_set_extra = _slots["__pydantic_extra__"].__set__
_set_private = _slots["__pydantic_private__"].__set__
# Every field's name, per model: the fields set of an instance built with all of them. Shared by
# those instances, as pydantic copies a fields set before it changes one (in model_copy) and
# nothing here changes one in place; building a set for each would cost as much again.
_all_fields: dict[type[BaseModel], set[str]] = {}
_ALL_STATUS_FIELDS = set(CanaryStatus.model_fields)


def _instance(model: type[M], values: dict[str, Any], fields: set[str]) -> M:
    instance = object.__new__(model)
    _set_dict(instance, values)
    _set_fields_set(instance, fields)
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def built(model: type[M], values: dict[str, Any]) -> M:
    """`model.model_construct(**values)`, for `values` that give every field of `model`."""
    fields = _all_fields.get(model)
    if fields is None:
        fields = _all_fields[model] = set(model.model_fields)
    return _instance(model, values, fields)


def evolve(status: CanaryStatus, updates: Mapping[str, Any]) -> CanaryStatus:
    """`status.model_copy(update=updates)`: a new status, the original untouched."""
    fields = status.model_fields_set
    if fields is not _ALL_STATUS_FIELDS and not fields.issuperset(updates):
        fields = fields | updates.keys()
        if fields == _ALL_STATUS_FIELDS:
            # A status the engine has run for a while has every field set: the shared set then
            # spares each later copy the comparison above.
            fields = _ALL_STATUS_FIELDS
    return _instance(CanaryStatus, {**status.__dict__, **updates}, fields)


def with_latest(
    checks: tuple[CheckResult, ...], results: Sequence[CheckResult], names: list[str]
) -> tuple[CheckResult, ...]:
    """`checks` with each of `results` (named `names`) replacing the earlier one of its name.

    `results` itself when it is a tuple that replaces every earlier record, so that the tick's
    history can share it.
    """
    latest = tuple(results)
    if [check.name for check in checks] == names:
        # Every check ran again, in the same order: the usual case of a judged tick.
        return latest
    fresh = set(names)
    return (*(check for check in checks if check.name not in fresh), *latest)


def appended(
    history: tuple[CheckResult, ...], results: Sequence[CheckResult]
) -> tuple[CheckResult, ...]:
    """`history` followed by `results`, keeping the newest HISTORY_LIMIT records."""
    return (*history, *results)[-HISTORY_LIMIT:]
