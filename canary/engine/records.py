"""Check records: building them on the hot path, and keeping the history bounded.

`decide` runs for every Canary on every tick and a rollout's replay runs it hundreds of
thousands of times, so a record is built without pydantic's validation: every value here comes
from an already-validated spec or from the engine's own arithmetic, and every field is given
(tests/unit/engine/test_records.py holds a trusted record equal to a validated one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from canary.api.status import HISTORY_LIMIT, CanaryStatus, CheckResult

M = TypeVar("M", bound=BaseModel)
_ALL_FIELDS = set(CheckResult.model_fields)
_ALL_STATUS_FIELDS = set(CanaryStatus.model_fields)
_new = object.__new__
# BaseModel's own slot descriptors, called directly: about half the cost of object.__setattr__,
# which looks each name up on the class first, and a record or status is built several times
# per tick.
_slots = BaseModel.__dict__
_set_dict = _slots["__dict__"].__set__
_set_fields_set = _slots["__pydantic_fields_set__"].__set__
_set_extra = _slots["__pydantic_extra__"].__set__
_set_private = _slots["__pydantic_private__"].__set__


def trusted(values: dict[str, Any]) -> CheckResult:
    # Equal to CheckResult.model_construct(**values) when every field is given, at a fraction of
    # the cost; tests/unit/engine/test_records.py holds the two equal. `built`, inlined: this
    # runs for every check of every judged tick.
    record = _new(CheckResult)
    _set_dict(record, values)
    _set_fields_set(record, _ALL_FIELDS)
    _set_extra(record, None)
    _set_private(record, None)
    return record


def built(model: type[M], values: dict[str, Any], fields: set[str]) -> M:
    """An instance of `model` holding `values` (every one of `fields`), without validation.

    Instances share the one `fields` set: pydantic copies the set before it changes it (in
    model_copy), and nothing here changes it in place.
    """
    instance = _new(model)
    _set_dict(instance, values)
    _set_fields_set(instance, fields)
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def evolve(status: CanaryStatus, updates: Mapping[str, Any]) -> CanaryStatus:
    """`status.model_copy(update=updates)` at a fraction of the cost, for the hot path.

    Safe for the same reason `trusted` is: the values come from the engine's own rules, and the
    fields are the model's own (a test holds the two ways equal).
    """
    fields = status.__pydantic_fields_set__
    if fields is not _ALL_STATUS_FIELDS and not fields.issuperset(updates):
        fields = fields | updates.keys()
        if len(fields) == len(_ALL_STATUS_FIELDS):
            # A status the engine has run for a while has every field set: one shared set then
            # spares each later copy the comparison above.
            fields = _ALL_STATUS_FIELDS
    # `built`, inlined: a tick that changes anything copies its status. The fields set is
    # shared with `status` when nothing new is set, for the reason given there.
    copied = _new(CanaryStatus)
    _set_dict(copied, {**status.__dict__, **updates})
    _set_fields_set(copied, fields)
    _set_extra(copied, None)
    _set_private(copied, None)
    return copied


def with_latest(
    checks: tuple[CheckResult, ...], results: Sequence[CheckResult], names: list[str]
) -> tuple[CheckResult, ...]:
    """`checks` with each of `results` (named `names`) replacing the earlier one of its name.

    `results` itself when it is a tuple that replaces every earlier record, so that the tick's
    history can share it.
    """
    latest = tuple(results)
    if len(checks) == len(latest):
        # Every check ran again, in the same order: the usual case of a judged tick. A plain
        # loop, because this runs on every judged tick and a generator or a zip costs more.
        for index, old in enumerate(checks):
            if old.name != names[index]:
                break
        else:
            return latest
    fresh = set(names)
    return (*(check for check in checks if check.name not in fresh), *latest)


def appended(
    history: tuple[CheckResult, ...], results: Sequence[CheckResult]
) -> tuple[CheckResult, ...]:
    latest = tuple(results)
    # Trimmed before joining: one new tuple rather than an over-long one and then its slice,
    # and every record's reference count is touched once rather than twice.
    dropped = len(history) + len(latest) - HISTORY_LIMIT
    if dropped <= 0:
        return history + latest
    if dropped >= len(history):
        return latest[-HISTORY_LIMIT:]
    return history[dropped:] + latest
