"""Conditions: one per type, and whether one is true, answered for the very tuple asked about."""

from __future__ import annotations

from datetime import UTC, datetime

from canary.engine import conditions

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_is_true_answers_for_each_tuple_even_after_many_others() -> None:
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
    # More tuples than the answers kept: the earliest ones are worked out again, not mistaken.
    for _ in range(5000):
        assert not conditions.is_true(tuple(restored), conditions.DRIFTED)
    assert conditions.is_true(drifted, conditions.DRIFTED)
    assert conditions.is_true(tuple(drifted), conditions.DRIFTED)
