"""The people around a rollout: who hears of it (`spec.notifications`), who must say yes at
which gate (`spec.approvals`), and where they look for more (`spec.links`).

A notification names a `ChatProvider` in the Canary's namespace, so a team declares its channel
and credentials once for many Canaries, and no credential ever sits in a Canary.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from canary.api.base import Deadline, Model

# Slack's IDs: users U…/W…, user groups S…, channels C…/G…/D… (letters and digits).
USER_ID_PATTERN = r"^[UW][A-Z0-9]{2,}$"
GROUP_ID_PATTERN = r"^S[A-Z0-9]{2,}$"
URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
UserId = Annotated[str, Field(pattern=USER_ID_PATTERN, max_length=32)]
GroupId = Annotated[str, Field(pattern=GROUP_ID_PATTERN, max_length=32)]


class Event(StrEnum):
    """What a notification can be told of."""

    STARTED = "started"
    STEP_ADVANCED = "stepAdvanced"
    CHECK_FAILED = "checkFailed"
    GATE_WAITING = "gateWaiting"
    APPROVAL_REQUESTED = "approvalRequested"
    APPROVAL_DECIDED = "approvalDecided"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolledBack"
    CHAOS_VERDICT = "chaosVerdict"
    INVALID = "invalid"


class Notification(Model):
    provider: str = Field(
        min_length=1,
        max_length=253,
        pattern=NAME_PATTERN,
        description="The ChatProvider, in the Canary's namespace, that carries the messages.",
    )
    channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="Where to post (a Slack channel ID or #name); the provider's channel if unset.",
    )
    events: list[Event] = Field(
        default_factory=lambda: list(Event),
        min_length=1,
        description="Which events to tell (all of them if unset).",
    )


class Gate(StrEnum):
    """Where an approval holds the rollout."""

    ROLLOUT = "rollout"
    TRAFFIC_INCREASE = "trafficIncrease"
    PROMOTION = "promotion"


class Approvers(Model):
    users: list[UserId] = Field(
        default_factory=list, max_length=200, description="Slack user IDs (U…) that may decide."
    )
    groups: list[GroupId] = Field(
        default_factory=list,
        max_length=50,
        description="Slack user-group IDs (S…) whose members may decide.",
    )

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


class Approvals(Model):
    before: list[Gate] = Field(
        min_length=1,
        description="The gates that wait for a person: rollout (before the first step), "
        "trafficIncrease (before a step's weight goes up) and promotion.",
    )
    steps: list[Annotated[int, Field(ge=2, le=100)]] | None = Field(
        default=None,
        description="trafficIncrease only before these steps (1-based, as `canary status` "
        "counts them; the first step is rollout's); every increase if unset.",
    )
    approvers: Approvers = Field(
        default_factory=Approvers,
        description="Who may decide in chat. `canary approve|reject` is held to RBAC instead.",
    )
    timeout: Deadline | None = Field(
        default=None,
        description="How long a gate waits for a decision (1s..72h); forever if unset.",
    )
    on_timeout: Literal["rollback", "wait"] = Field(
        default="rollback",
        description="What a gate's timeout does: rollback, or keep waiting (it says so once).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.before)) != len(self.before):
            raise ValueError("before: a gate is named twice")
        if self.steps is not None and Gate.TRAFFIC_INCREASE not in self.before:
            raise ValueError("steps: only for a trafficIncrease gate, which before lacks")
        return self


class Links(Model):
    grafana: str | None = Field(
        default=None, pattern=URL_PATTERN, max_length=2048, description="A dashboard URL."
    )
    jaeger: str | None = Field(
        default=None, pattern=URL_PATTERN, max_length=2048, description="A trace search URL."
    )
    kiali: str | None = Field(
        default=None, pattern=URL_PATTERN, max_length=2048, description="A service graph URL."
    )

    def named(self) -> list[tuple[str, str]]:
        return [(name.capitalize(), url) for name, url in self if isinstance(url, str)]


# A button's action_id in an approval message, and its value: which rollout and gate a click is
# about, so a click on an earlier revision's or an ended gate's message decides nothing.
APPROVE_ACTION = "canary.approve"
REJECT_ACTION = "canary.reject"


class ClickValue(Model):
    canary: str = Field(max_length=320, description="namespace/name")
    revision: str = Field(max_length=64)
    gate: str = Field(max_length=64)


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timedOut"


class ApprovalRecord(Model):
    """One approval gate of a rollout: asked for, and perhaps decided."""

    gate: str = Field(description="The gate: rollout, promotion, or `step N` (trafficIncrease).")
    revision: str = Field(description="The revision it was asked for.")
    step: int = Field(description="The step the rollout was at (0-based).")
    requested_at: datetime = Field(description="When the rollout started waiting.")
    decision: Decision | None = Field(
        default=None, description="approved, rejected or timedOut; unset while waiting."
    )
    by: str = Field(default="", description="Who decided (a Slack user ID, or the CLI's user).")
    via: str = Field(default="", description="How: slack or cli.")
    decided_at: datetime | None = Field(default=None, description="When it was decided.")
