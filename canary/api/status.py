"""`Canary.status`: the whole state of a rollout, so a restarted controller resumes from it.

Every timestamp the engine's rules depend on (when the phase began, when the step's clock
started, when the last check ran, when the phase's deadline falls) is stored here rather than
kept in memory: that is what lets a new controller process carry on mid-step without repeating
or skipping one. The measurement history is bounded and answers "why did it fail?" from the
object alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

from canary.api.base import Model
from canary.api.chaos import Trial
from canary.api.commands import CommandResult
from canary.api.comparison import ComparisonRecord, SequentialState
from canary.api.people import ApprovalRecord
from canary.api.traces import SpanEvidence

HISTORY_LIMIT = 50
# The most checks a Canary's status carries a sequential test for: more than any spec needs.
MAX_COMPARISONS = 32
# The controller writes every time of the status from its clock, so one outside these years, or
# without a time zone, was written by hand: the engine's clock arithmetic (a deadline shifted by
# a suspension, a naive time compared with an aware one) would raise on it at every tick.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(3000, 1, 1, tzinfo=UTC)


class Phase(StrEnum):
    INITIALIZING = "Initializing"
    PROGRESSING = "Progressing"
    PROMOTING = "Promoting"
    ROLLING_BACK = "RollingBack"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    INVALID = "Invalid"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.INVALID})


class MeasurementKind(StrEnum):
    VALUE = "value"
    NO_DATA = "no_data"
    NAN = "nan"
    ERROR = "error"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Condition(Model):
    """A Kubernetes-convention condition."""

    type: str = Field(
        description="Promoted, Progressing, Waiting, InvalidSpec, Suspended, WeightsDrifted or "
        "RollbackVerified."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="A CamelCase word for machines.")
    message: str = Field(default="", description="A sentence for people.")
    last_transition_time: datetime = Field(description="When status last changed.")


class CheckResult(Model):
    """One judged check (a metric or a rollout webhook): what was asked, what came back, verdict.

    The same record serves as the latest result of a check and as an entry of the history, so a
    failure is explained from the object alone: the resolved query, the raw value and its kind,
    the threshold, the revision and step it judged.
    """

    name: str = Field(description="The metric or webhook name.")
    kind: MeasurementKind = Field(description="value, no_data, nan or error.")
    value: float | None = Field(default=None, description="The value when kind is value.")
    samples: int | None = Field(default=None, description="Requests in the window, if known.")
    query: str = Field(default="", description="The query as sent, variables resolved.")
    threshold: str = Field(default="", description="The passing range, e.g. >= 99.")
    verdict: Verdict = Field(description="pass, fail or inconclusive.")
    passed: bool | None = Field(
        default=None, description="True or False once judged; unset while inconclusive."
    )
    counted: bool = Field(description="False for observe-mode metrics, which never count.")
    message: str = Field(default="", description="Why, for anything but a plain passing value.")
    spans: SpanEvidence | None = Field(
        default=None,
        description="For a trace check: the operation, how many spans were judged (a sample or "
        "all), and example trace IDs of the worst.",
    )
    comparison: ComparisonRecord | None = Field(
        default=None,
        description="For a check that compares with stable: the sequential test's verdict, its "
        "e-values, and each side's rate with its confidence sequence, as of this check.",
    )
    revision: str = Field(description="The revision the measurement judged.")
    step: int = Field(description="The step it judged.")
    weight: int = Field(description="The canary weight it judged.")
    at: datetime = Field(description="When it was measured.")


class ChaosPhase(StrEnum):
    RUNNING = "Running"
    PASSED = "Passed"
    FAILED = "Failed"


class ChaosResult(Model):
    """One fault experiment of this rollout: what was injected, what the callers saw, verdict."""

    name: str = Field(description="The experiment's name.")
    phase: ChaosPhase = Field(description="Running, Passed or Failed.")
    trial: Trial = Field(description="The experiment as it ran: fault, duration, expectations.")
    subset: str = Field(description="The subset the fault went to (always the canary).")
    fault: str = Field(description="What was injected, e.g. abort 503 to 50%.")
    expect: str = Field(description="What had to hold.")
    revision: str = Field(description="The revision it tested.")
    weight: int = Field(description="The canary weight of the step it ran at.")
    started_at: datetime = Field(description="When the fault was injected.")
    expires_at: datetime = Field(description="When the fault is removed, whatever happens.")
    ended_at: datetime | None = Field(default=None, description="When the fault was cleared.")
    judged_at: datetime | None = Field(default=None, description="When the verdict was made.")
    requests: float | None = Field(
        default=None, description="Requests the callers sent to the canary during the fault."
    )
    errors: float | None = Field(
        default=None, description="Of those, answered 5xx (as the callers saw them)."
    )
    ejections: float | None = Field(
        default=None, description="Canary hosts ejected by the callers' outlier detection."
    )
    overflow: float | None = Field(
        default=None, description="Requests the callers' circuit breaker shed (pending overflow)."
    )
    success_rate: float | None = Field(
        default=None, description="The callers' success rate over every subset, in percent."
    )
    message: str = Field(default="", description="Why it passed or failed.")


class CanaryStatus(Model):
    phase: Phase | None = Field(default=None, description="Where the rollout is.")
    message: str = Field(default="", description="What the phase is waiting for, or why it ended.")
    revision: str = Field(
        default="",
        description="The revision this rollout judges: a digest of the spec and of the target's "
        "pod template (Flagger's checksum).",
    )
    target_revision: str = Field(
        default="",
        description="The revision of the canary targetRef's pod template (spec.template) this "
        "rollout judges; a new one starts the rollout over.",
    )
    observed_generation: int = Field(
        default=0, ge=0, description="The Canary's metadata.generation the controller acted on."
    )
    waiting_for: str = Field(
        default="",
        description="The gate the rollout waits on (e.g. confirm-promotion webhook approve), "
        "empty when none; a Waiting condition says the same.",
    )
    canary_weight: int = Field(default=0, ge=0, le=100, description="The canary's weight.")
    step: int = Field(default=0, ge=0, description="The index of the current step.")
    failed_checks: int = Field(default=0, ge=0, description="Failed checks in this rollout.")
    stable_subset: str = Field(default="", description="The subset that is stable now.")
    canary_subset: str = Field(default="", description="The subset being rolled out.")
    stable_target: str = Field(
        default="",
        description="The Deployment serving the stable subset, when known (the last promoted "
        "canary's targetRef, or stable.targetRef).",
    )
    retired_target: str = Field(
        default="",
        description="The Deployment of the subset the last promotion retired; scaleDownAfter "
        "scales it to zero.",
    )
    scaled_down_at: datetime | None = Field(
        default=None, description="When retiredTarget was scaled to zero."
    )
    promote_requested: Literal["checks", "force"] | None = Field(
        default=None,
        description="canary promote asked to skip the remaining steps: checks (once the current "
        "step's checks pass) or force (at once).",
    )
    last_command: CommandResult | None = Field(
        default=None, description="The last command (canary promote, abort, retry) handled."
    )
    last_transition_time: datetime | None = Field(
        default=None, description="When the phase last changed."
    )
    step_started_at: datetime | None = Field(
        default=None, description="When the current step's weights took effect."
    )
    last_check_at: datetime | None = Field(default=None, description="When checks last ran.")
    data_wait_from: datetime | None = Field(
        default=None,
        description="Where onNoData: wait counts from: the step's start, or the first check "
        "after the controller was away for more than two check intervals.",
    )
    deadline_at: datetime | None = Field(
        default=None, description="When the current phase gives up; see deadlineAction."
    )
    deadline_action: Literal["rollback", "fail"] | None = Field(
        default=None, description="What happens at deadlineAt."
    )
    suspended_at: datetime | None = Field(
        default=None, description="When spec.suspend froze the rollout."
    )
    conditions: tuple[Condition, ...] = Field(default=(), description="Kubernetes conditions.")
    checks: tuple[CheckResult, ...] = Field(
        default=(), description="The latest result of each check in this rollout."
    )
    history: tuple[CheckResult, ...] = Field(
        default=(), description=f"The last {HISTORY_LIMIT} judged measurements, oldest first."
    )
    chaos: tuple[ChaosResult, ...] = Field(
        default=(), description="The fault experiments of this rollout, in the order they ran."
    )
    approvals: tuple[ApprovalRecord, ...] = Field(
        default=(),
        description="The approval gates of this rollout, asked and decided, in order.",
    )
    sequential: tuple[SequentialState, ...] = Field(
        default=(),
        max_length=MAX_COMPARISONS,
        description="The state of each comparing check's sequential test in this rollout, by "
        "check name, so a restarted controller carries the same test on.",
    )

    @model_validator(mode="after")
    def _written_by_a_clock(self) -> Self:
        for path, moment in _moments(self, ""):
            if moment.utcoffset() is None:
                raise ValueError(f"{path}: {moment.isoformat()} has no time zone")
            if not _EARLIEST <= moment < _LATEST:
                raise ValueError(f"{path}: {moment.isoformat()} is outside the years 1970..2999")
        return self


def _moments(value: Any, path: str) -> Iterator[tuple[str, datetime]]:
    """Every datetime inside a status, with its path as the wire spells it."""
    if isinstance(value, datetime):
        yield path, value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            key = info.alias or name
            yield from _moments(getattr(value, name), f"{path}.{key}" if path else key)
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            yield from _moments(item, f"{path}[{index}]")
