"""Check records: building them on the hot path, and keeping the history bounded.

`decide` runs for every Canary on every tick and a rollout's replay runs it hundreds of
thousands of times, so a record is built without pydantic's validation: every value here comes
from an already-validated spec or from the engine's own arithmetic. The factory's signature is
what keeps it typed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from canary.api.status import HISTORY_LIMIT, CheckResult, MeasurementKind, Verdict


def _trusted(values: dict[str, Any]) -> CheckResult:
    # Equal to CheckResult.model_construct(**values) when every field is given, at a third of the
    # cost; tests/unit/engine/test_records.py holds the two equal.
    record = CheckResult.__new__(CheckResult)
    object.__setattr__(record, "__dict__", values)
    object.__setattr__(record, "__pydantic_fields_set__", set(values))
    object.__setattr__(record, "__pydantic_extra__", None)
    object.__setattr__(record, "__pydantic_private__", None)
    return record


def check_result(
    *,
    name: str,
    kind: MeasurementKind,
    value: float | None,
    samples: int | None,
    query: str,
    threshold: str,
    verdict: Verdict,
    counted: bool,
    message: str,
    revision: str,
    step: int,
    weight: int,
    at: datetime,
) -> CheckResult:
    passed = None if verdict is Verdict.INCONCLUSIVE else verdict is Verdict.PASS
    return _trusted(
        {
            "name": name,
            "kind": kind,
            "value": value,
            "samples": samples,
            "query": query,
            "threshold": threshold,
            "verdict": verdict,
            "passed": passed,
            "counted": counted,
            "message": message,
            "revision": revision,
            "step": step,
            "weight": weight,
            "at": at,
        }
    )


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
