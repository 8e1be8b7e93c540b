"""Conditions: one per type, its transition time kept while its status holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from canary.api.status import Condition
from canary.engine import conditions

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_is_true_answers_for_the_tuple_asked_about() -> None:
    drifted = conditions.with_condition(
        (), type=conditions.DRIFTED, status="True", reason="WeightsDrifted", message="", now=AT
    )
    restored = conditions.with_condition(
        drifted,
        type=conditions.DRIFTED,
        status="False",
        reason="WeightsRestored",
        message="",
        now=AT,
    )
    assert conditions.is_true(drifted, conditions.DRIFTED)
    assert not conditions.is_true(restored, conditions.DRIFTED)
    assert not conditions.is_true(drifted, conditions.PROGRESSING)
    assert not conditions.is_true((), conditions.DRIFTED)


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    later = AT + timedelta(minutes=1)
    first = conditions.with_condition(
        (), type=conditions.PROGRESSING, status="True", reason="StepStarted", message="1", now=AT
    )
    same = conditions.with_condition(
        first,
        type=conditions.PROGRESSING,
        status="True",
        reason="StepStarted",
        message="1",
        now=later,
    )
    assert same is first
    reworded = conditions.with_condition(
        first,
        type=conditions.PROGRESSING,
        status="True",
        reason="StepAdvanced",
        message="2",
        now=later,
    )
    assert [(c.reason, c.last_transition_time) for c in reworded] == [("StepAdvanced", AT)]
    flipped = conditions.with_condition(
        reworded,
        type=conditions.PROGRESSING,
        status="False",
        reason="Done",
        message="",
        now=later,
    )
    assert [(c.status, c.last_transition_time) for c in flipped] == [("False", later)]


def test_a_condition_is_validated_and_replaces_the_one_of_its_type() -> None:
    suspended = conditions.with_condition(
        (), type=conditions.SUSPENDED, status="True", reason="Suspended", message="", now=AT
    )
    both = conditions.with_condition(
        suspended,
        type=conditions.DRIFTED,
        status="True",
        reason="WeightsDrifted",
        message="",
        now=AT,
    )
    resumed = conditions.with_condition(
        both, type=conditions.SUSPENDED, status="False", reason="Resumed", message="", now=AT
    )
    assert [(c.type, c.status) for c in resumed] == [
        (conditions.DRIFTED, "True"),
        (conditions.SUSPENDED, "False"),
    ]
    expected = Condition(
        type=conditions.SUSPENDED,
        status="False",
        reason="Resumed",
        message="",
        last_transition_time=AT,
    )
    assert resumed[-1] == expected
    assert resumed[-1].model_fields_set == expected.model_fields_set
