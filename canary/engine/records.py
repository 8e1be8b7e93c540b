"""Check records: building them on the hot path, and keeping the history bounded.

`decide` runs for every Canary on every tick and a rollout's replay runs it hundreds of
thousands of times, so a record is built without pydantic's validation: every value here comes
from an already-validated spec or from the engine's own arithmetic, and every field is given
(tests/unit/engine/test_records.py holds a trusted record equal to a validated one).
"""

from __future__ import annotations

from collections.abc import Mapping
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
    if fields is not _ALL_STATUS_FIELDS and not updates.keys() <= fields:
        fields = fields | updates.keys()
        if len(fields) == len(_ALL_STATUS_FIELDS):
            # A status the engine has run for a while has every field set: one shared set then
            # spares each later copy the comparison above.
            fields = _ALL_STATUS_FIELDS
    # Shared with `status` when nothing new is set, for the reason given in `built`.
    return built(CanaryStatus, {**status.__dict__, **updates}, fields)


def with_latest(
    checks: tuple[CheckResult, ...], results: list[CheckResult], names: list[str]
) -> tuple[CheckResult, ...]:
    """`checks` with each of `results` (named `names`) replacing the earlier one of its name."""
    if len(checks) == len(results):
        # Every check ran again, in the same order: the usual case of a judged tick. A plain
        # loop, because this runs on every judged tick and a generator costs twice as much.
        for old, name in zip(checks, names, strict=True):
            if old.name != name:
                break
        else:
            return tuple(results)
    fresh = set(names)
    return (*(check for check in checks if check.name not in fresh), *results)


def appended(
    history: tuple[CheckResult, ...], results: list[CheckResult]
) -> tuple[CheckResult, ...]:
    combined = history + tuple(results)
    return combined[-HISTORY_LIMIT:] if len(combined) > HISTORY_LIMIT else combined
