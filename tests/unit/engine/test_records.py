"""Records, conditions and status copies built without validation equal pydantic's own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from canary.api.status import (
    HISTORY_LIMIT,
    CanaryStatus,
    CheckResult,
    Condition,
    MeasurementKind,
    Phase,
    Verdict,
)
from canary.engine import records
from canary.engine.decide import decide
from canary.engine.observation import Measurement

from .builders import at, make_spec, seen

AT = datetime(2026, 1, 1, tzinfo=UTC)
VALUES = {
    "name": "request-success-rate",
    "kind": MeasurementKind.VALUE,
    "value": 99.5,
    "samples": 120,
    "query": "sum(x)",
    "threshold": ">= 99",
    "verdict": Verdict.PASS,
    "passed": True,
    "counted": True,
    "message": "",
    "spans": None,
    "comparison": None,
    "revision": "abc",
    "step": 1,
    "weight": 25,
    "at": AT,
}


def record(**overrides: Any) -> CheckResult:
    return records.built(CheckResult, {**VALUES, **overrides})


def test_a_built_record_equals_a_validated_one() -> None:
    built = records.built(CheckResult, dict(VALUES))
    validated = CheckResult.model_validate(VALUES)
    assert built == validated
    assert built.model_dump(mode="json", by_alias=True) == validated.model_dump(
        mode="json", by_alias=True
    )
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_copy(update={"step": 2}).step == 2
    assert built.step == 1


def test_a_built_condition_equals_a_validated_one() -> None:
    values = {
        "type": "Progressing",
        "status": "True",
        "reason": "StepStarted",
        "message": "step 1/2: weight 10",
        "last_transition_time": AT,
    }
    built = records.built(Condition, dict(values))
    validated = Condition.model_validate(values)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert built.to_wire() == validated.to_wire()


def test_evolve_equals_model_copy() -> None:
    status = CanaryStatus(phase=Phase.PROGRESSING, canary_weight=10, revision="abc")
    updates = {"canary_weight": 25, "step": 1, "message": "step 2"}
    evolved = records.evolve(status, updates)
    copied = status.model_copy(update=updates)
    assert evolved == copied
    assert evolved.model_dump_json(by_alias=True) == copied.model_dump_json(by_alias=True)
    assert evolved.model_fields_set == copied.model_fields_set
    assert status.canary_weight == 10, "the original is untouched"
    assert status.model_fields_set == {"phase", "canary_weight", "revision"}


def test_a_judged_ticks_status_reads_back_from_the_wire_as_it_was_written() -> None:
    spec = make_spec()
    live = {"v1": 90, "v2": 10}
    first = decide(spec, CanaryStatus(), seen(spec, {"v1": 100, "v2": 0}), at(0)).status
    started = decide(spec, first, seen(spec, live), at(1)).status
    values = {"request-success-rate": Measurement.of(99.5, query="sum(x)", samples=120)}
    judged = decide(spec, started, seen(spec, live, values=values), at(11)).status
    assert judged.checks, "the tick judged its metric"
    wire = judged.model_dump(mode="json", by_alias=True)
    assert CanaryStatus.model_validate(wire) == judged
    assert judged.history[-1] is judged.checks[-1]


def test_with_latest_replaces_by_name_and_keeps_the_others() -> None:
    old = [record(name=name, step=0) for name in ("a", "b", "c")]
    new = [record(name=name, step=1) for name in ("b",)]
    merged = records.with_latest(tuple(old), new, ["b"])
    assert [(c.name, c.step) for c in merged] == [("a", 0), ("c", 0), ("b", 1)]
    rerun = [record(name=n) for n in "acb"]
    again = records.with_latest(merged, rerun, list("acb"))
    assert [c.name for c in again] == ["a", "c", "b"]
    reordered = [record(name=n, step=2) for n in "abc"]
    latest = records.with_latest(again, reordered, list("abc"))
    assert [(c.name, c.step) for c in latest] == [("a", 2), ("b", 2), ("c", 2)]


def test_history_keeps_the_newest_entries() -> None:
    history = tuple(record(step=i) for i in range(HISTORY_LIMIT))
    newer = [record(step=HISTORY_LIMIT + i) for i in range(3)]
    kept = records.appended(history, newer)
    assert len(kept) == HISTORY_LIMIT
    assert kept[-1].step == HISTORY_LIMIT + 2
    assert kept[0].step == 3


def test_a_tick_that_reruns_every_check_shares_its_records_with_the_history() -> None:
    old = tuple(record(name=n, step=0) for n in "ab")
    fresh = tuple(record(name=n, step=1) for n in "ab")
    latest = records.with_latest(old, fresh, ["a", "b"])
    assert latest is fresh
    history = records.appended(old, fresh)
    assert history[-2:] == fresh
    assert history[-1] is fresh[-1]


def test_history_trims_as_joining_then_slicing_would() -> None:
    def joined(history: tuple[CheckResult, ...], new: tuple[CheckResult, ...]) -> list[int]:
        return [check.step for check in records.appended(history, new)]

    for kept in (0, 1, HISTORY_LIMIT - 3, HISTORY_LIMIT - 1, HISTORY_LIMIT):
        history = tuple(record(step=i) for i in range(kept))
        for added in (0, 1, 3, HISTORY_LIMIT, HISTORY_LIMIT + 2):
            new = tuple(record(step=1000 + i) for i in range(added))
            steps = [check.step for check in history + new][-HISTORY_LIMIT:]
            assert joined(history, new) == steps, (kept, added)
