"""Check records: building them on the hot path, and keeping the history bounded.

`decide` runs for every Canary on every tick and a rollout's replay runs it hundreds of
thousands of times, so a record is built without pydantic's validation: every value here comes
from an already-validated spec or from the engine's own arithmetic, and every field is given
(tests/unit/engine/test_records.py holds a trusted record equal to a validated one).
"""

from __future__ import annotations

from typing import Any

from canary.api.status import HISTORY_LIMIT, CanaryStatus, CheckResult

_ALL_FIELDS = frozenset(CheckResult.model_fields)
_new = object.__new__
_set = object.__setattr__


def trusted(values: dict[str, Any]) -> CheckResult:
    # Equal to CheckResult.model_construct(**values) when every field is given, at a fraction of
    # the cost; tests/unit/engine/test_records.py holds the two equal.
    record = _new(CheckResult)
    _set(record, "__dict__", values)
    _set(record, "__pydantic_fields_set__", set(_ALL_FIELDS))
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


def evolve(status: CanaryStatus, updates: dict[str, Any]) -> CanaryStatus:
    """`status.model_copy(update=updates)` at a fraction of the cost, for the hot path.

    Safe for the same reason `trusted` is: the values come from the engine's own rules, and the
    fields are the model's own (a test holds the two ways equal).
    """
    values = {**status.__dict__, **updates}
    evolved = _new(CanaryStatus)
    _set(evolved, "__dict__", values)
    _set(evolved, "__pydantic_fields_set__", status.__pydantic_fields_set__ | updates.keys())
    _set(evolved, "__pydantic_extra__", None)
    _set(evolved, "__pydantic_private__", None)
    return evolved


def with_latest(
    checks: tuple[CheckResult, ...], results: list[CheckResult]
) -> tuple[CheckResult, ...]:
    """`checks` with each of `results` replacing the earlier result of the same name."""
    fresh = {result.name for result in results}
    return tuple(check for check in checks if check.name not in fresh) + tuple(results)


def appended(
    history: tuple[CheckResult, ...], results: list[CheckResult]
) -> tuple[CheckResult, ...]:
    combined = history + tuple(results)
    return combined[-HISTORY_LIMIT:] if len(combined) > HISTORY_LIMIT else combined
