"""Which engine notices reach chat, and as which event."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from canary.api.people import Event
from canary.controller.chat.events import REASONS, event_of

# The engine's reasons that stay in the Events and the log only.
NOT_TOLD = frozenset(
    {
        "Suspended",
        "Resumed",
        "WeightsDrifted",
        "WeightsRestored",
        "TickFailed",
        "Deleting",
        "Deleted",
        "ScaledDown",
        "StatusUnreadable",
        "PreflightPassed",
    }
)


@pytest.mark.parametrize(
    ("reason", "event"),
    [
        ("RolloutStarted", Event.STARTED),
        ("RolloutRestarted", Event.STARTED),
        ("StepStarted", Event.STEP_ADVANCED),
        ("StepAdvanced", Event.STEP_ADVANCED),
        ("Promoting", Event.STEP_ADVANCED),
        ("MetricFailed", Event.CHECK_FAILED),
        ("MetricNoData", Event.CHECK_FAILED),
        ("WebhookFailed", Event.CHECK_FAILED),
        ("Waiting", Event.GATE_WAITING),
        ("ApprovalRequested", Event.APPROVAL_REQUESTED),
        ("Approved", Event.APPROVAL_DECIDED),
        ("Rejected", Event.APPROVAL_DECIDED),
        ("ApprovalTimedOut", Event.APPROVAL_DECIDED),
        ("Promoted", Event.PROMOTED),
        ("RollingBack", Event.ROLLED_BACK),
        ("RolledBack", Event.ROLLED_BACK),
        ("ChaosStarted", Event.CHAOS_VERDICT),
        ("ChaosPassed", Event.CHAOS_VERDICT),
        ("ChaosFailed", Event.CHAOS_VERDICT),
        ("InvalidSpec", Event.INVALID),
    ],
)
def test_main_reasons(reason: str, event: Event) -> None:
    assert event_of(reason) is event


def test_every_event_is_reachable_and_unknown_reasons_are_not_told() -> None:
    assert set(REASONS.values()) == set(Event)
    assert event_of("SomethingNew") is None
    for reason in NOT_TOLD:
        assert event_of(reason) is None


def test_every_reason_the_engine_notifies_is_decided() -> None:
    """A reason in the engine's source (Notify("X", ...), reason="X") is either told in chat or
    named in NOT_TOLD: a new one is a decision, not an accident."""
    engine = Path(__file__).parents[4] / "canary" / "engine"
    source = "\n".join(path.read_text() for path in engine.glob("*.py"))
    found = set(re.findall(r'Notify\(\s*"([A-Z][A-Za-z]+)"', source))
    found |= set(re.findall(r'Notify\(\s*reason="([A-Z][A-Za-z]+)"', source))
    # Reasons handed to enter(), which notifies with them.
    found |= {"RolloutStarted", "RolloutRestarted", "RolloutRetried", "StepStarted"}
    found |= {"StepAdvanced", "Promoting", "Promoted", "RollingBack", "RolledBack"}
    assert found, "no reason found: the engine's source moved"
    undecided = sorted(found - set(REASONS) - NOT_TOLD)
    assert undecided == []
