"""Check records: building them on the hot path, and keeping the history bounded.

`decide` runs for every Canary on every tick and a rollout's replay runs it hundreds of
thousands of times, so a record is built without pydantic's validation: every value here comes
from an already-validated spec or from the engine's own arithmetic, and every field is given
(tests/unit/engine/test_records.py holds a trusted record equal to a validated one).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from canary.api.status import HISTORY_LIMIT, CanaryStatus, CheckResult

M = TypeVar("M", bound=BaseModel)
_ALL_FIELDS = set(CheckResult.model_fields)
_new = object.__new__
_set = object.__setattr__


def trusted(values: dict[str, Any]) -> CheckResult:
    # Equal to CheckResult.model_construct(**values) when every field is given, at a fraction of
    # the cost; tests/unit/engine/test_records.py holds the two equal.
    return built(CheckResult, values, _ALL_FIELDS)


def built(model: type[M], values: dict[str, Any], fields: set[str]) -> M:
    """An instance of `model` holding `values` (every one of `fields`), without validation.

    Instances share the one `fields` set: pydantic copies the set before it changes it (in
    model_copy), and nothing here changes it in place.
    """
    instance = _new(model)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", fields)
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


def evolve(status: CanaryStatus, updates: dict[str, Any]) -> CanaryStatus:
    """`status.model_copy(update=updates)` at a fraction of the cost, for the hot path.

    Safe for the same reason `trusted` is: the values come from the engine's own rules, and the
    fields are the model's own (a test holds the two ways equal).
    """
    values = {**status.__dict__, **updates}
    fields = status.__pydantic_fields_set__
    if not updates.keys() <= fields:
        fields = fields | updates.keys()
    evolved = _new(CanaryStatus)
    _set(evolved, "__dict__", values)
    # Shared with `status` when nothing new is set, for the reason given in `built`.
    _set(evolved, "__pydantic_fields_set__", fields)
    _set(evolved, "__pydantic_extra__", None)
    _set(evolved, "__pydantic_private__", None)
    return evolved


def with_latest(
    checks: tuple[CheckResult, ...], results: list[CheckResult]
) -> tuple[CheckResult, ...]:
    """`checks` with each of `results` replacing the earlier result of the same name."""
    if len(checks) == len(results):
        # Every check ran again, in the same order: the usual case of a judged tick. A plain
        # loop, because this runs on every judged tick and a generator costs twice as much.
        for old, new in zip(checks, results, strict=True):
            if old.name != new.name:
                break
        else:
            return tuple(results)
    fresh = {result.name for result in results}
    return (*(check for check in checks if check.name not in fresh), *results)


def appended(
    history: tuple[CheckResult, ...], results: list[CheckResult]
) -> tuple[CheckResult, ...]:
    combined = history + tuple(results)
    return combined[-HISTORY_LIMIT:] if len(combined) > HISTORY_LIMIT else combined
