"""Which engine notice is which `spec.notifications[].events` entry.

The engine says what happened as a `Notify.reason` (the reason of its Kubernetes Event); a
notification subscribes to a closed set of events (`canary.api.people.Event`). A reason not in
this table (a suspension, a drift written back, a tick that failed, a scale-down) is not sent to
chat: it stays in the Events and the log. `tests/unit/controller/chat/test_events.py` lists
the reasons the engine emits, so a new one is a decision, not an accident.
"""

from __future__ import annotations

from canary.api.people import Event

REASONS: dict[str, Event] = {
    "RolloutStarted": Event.STARTED,
    "RolloutRestarted": Event.STARTED,
    "RolloutRetried": Event.STARTED,
    "StepStarted": Event.STEP_ADVANCED,
    "StepAdvanced": Event.STEP_ADVANCED,
    "Promoting": Event.STEP_ADVANCED,
    # A step ended before its interval: every comparison with stable showed equivalence.
    "AdvancedEarly": Event.STEP_ADVANCED,
    "MetricFailed": Event.CHECK_FAILED,
    "MetricNoData": Event.CHECK_FAILED,
    "WebhookFailed": Event.CHECK_FAILED,
    "RegressionProven": Event.CHECK_FAILED,
    "Waiting": Event.GATE_WAITING,
    # The rollout waits on a fix someone must make, as it waits on a gate.
    "PreflightFailed": Event.GATE_WAITING,
    "ApprovalRequested": Event.APPROVAL_REQUESTED,
    "Approved": Event.APPROVAL_DECIDED,
    "Rejected": Event.APPROVAL_DECIDED,
    "ApprovalTimedOut": Event.APPROVAL_DECIDED,
    "Promoted": Event.PROMOTED,
    "RollingBack": Event.ROLLED_BACK,
    "RolledBack": Event.ROLLED_BACK,
    "RollbackUnverified": Event.ROLLED_BACK,
    "ChaosStarted": Event.CHAOS_VERDICT,
    "ChaosPassed": Event.CHAOS_VERDICT,
    "ChaosFailed": Event.CHAOS_VERDICT,
    "InvalidSpec": Event.INVALID,
    "StableRestored": Event.INVALID,
}


def event_of(reason: str) -> Event | None:
    """The notification event of an engine notice's reason; None: not told in chat."""
    return REASONS.get(reason)
