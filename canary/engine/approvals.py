"""Approval gates: a person says yes (or no) before the rollout starts, before a step's weight
goes up, or before the promotion (`spec.approvals`).

A gate that waits is a record in `status.approvals` (its gate, revision, step, when it was asked)
with no decision yet, `status.waitingFor` naming it and the `Waiting` condition True, exactly as
a confirm webhook holds the rollout (gates.py): the weight holds, the step's checks keep running,
a failing one still rolls back, and the phase's deadline does not run. A decision arrives as a
command (`canary approve|reject`, or a click in chat written as the same annotation) and is
answered once by id, so two clicks, or a click and a CLI decision, decide once; the record then
keeps who decided, how and when, so a restarted controller or a new leader reads it back.

A reject rolls back at once. A gate past `timeout` rolls back (`onTimeout: rollback`) or says
once that it timed out and keeps waiting (`wait`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from canary.api import durations
from canary.api.commands import Command, Verb
from canary.api.people import ApprovalRecord, Decision, Gate
from canary.api.status import CanaryStatus, Phase
from canary.engine import gates
from canary.engine.actions import Notify
from canary.engine.tick import Tick

_TIMED_OUT = " (timed out; still waiting)"
# The phases a gate is decided in (a click is refused outside them before it is written).
DECIDABLE = frozenset({Phase.INITIALIZING, Phase.PROGRESSING})


@dataclass(frozen=True, slots=True)
class Approval:
    open: bool
    updates: dict[str, Any] = field(default_factory=dict)
    notices: tuple[Notify, ...] = ()
    # Why the rollout must roll back now (the gate timed out with onTimeout: rollback).
    roll_back: str = ""


def gate_before_step(step: int) -> str:
    """The gate's name before 0-based `step`: rollout before the first, `step N` (1-based)."""
    return Gate.ROLLOUT.value if step == 0 else f"step {step + 1}"


def required(tick: Tick, gate: str) -> bool:
    approvals = tick.spec.approvals
    if approvals is None:
        return False
    if gate in (Gate.ROLLOUT.value, Gate.PROMOTION.value):
        return Gate(gate) in approvals.before
    if Gate.TRAFFIC_INCREASE not in approvals.before:
        return False
    step = int(gate.removeprefix("step "))
    return approvals.steps is None or step in approvals.steps


def pending(status: CanaryStatus) -> ApprovalRecord | None:
    """The gate that waits for a decision in this rollout, if one does."""
    if status.approvals and status.approvals[-1].decision is None:
        record = status.approvals[-1]
        if record.revision == status.revision:
            return record
    return None


def what(gate: str) -> str:
    return f"approval for {gate}"


def check(tick: Tick, gate: str) -> Approval:
    """Whether `gate` is open: not required, or approved for this revision; otherwise what
    waiting on it looks like (asked once, with a notice), or a rollback when it timed out."""
    if not required(tick, gate):
        return Approval(True)
    status = tick.status
    record = record_of(status, gate)
    if record is not None and record.decision is Decision.APPROVED:
        return Approval(True, gates.opened(tick))
    if record is None:
        record = ApprovalRecord(
            gate=gate, revision=status.revision, step=status.step, requested_at=tick.now
        )
        asked = {"approvals": (*status.approvals, record)}
        message = (
            f"waiting for {what(gate)}: approve or reject in chat, or with "
            "`canary approve|reject NAME`"
        )
        held = gates.waiting(tick, what(gate), asked, message=message)
        return Approval(False, held.updates, (Notify("ApprovalRequested", message),))
    approvals = tick.spec.approvals
    assert approvals is not None
    # Still held (a resumed suspension, a hand edit may have cleared waitingFor): the phase's
    # deadline must not run while a person is asked.
    still: dict[str, Any] = {}
    if status.waiting_for not in (what(gate), what(gate) + _TIMED_OUT):
        still = gates.waiting(tick, what(gate), {}, message=f"waiting for {what(gate)}").updates
    if approvals.timeout is None or record.decision is not None:
        return Approval(False, still)
    limit = durations.seconds(approvals.timeout)
    if tick.now - record.requested_at < timedelta(seconds=limit):
        return Approval(False, still)
    if approvals.on_timeout == "rollback":
        timed_out = record.model_copy(
            update={"decision": Decision.TIMED_OUT, "decided_at": tick.now}
        )
        why = f"nobody decided on {what(gate)} within {approvals.timeout}"
        return Approval(False, {"approvals": _replaced(status, timed_out)}, roll_back=why)
    if status.waiting_for.endswith(_TIMED_OUT):
        return Approval(False, still)
    message = f"{what(gate)} timed out after {approvals.timeout}; still waiting (onTimeout: wait)"
    updates: dict[str, Any] = {"waiting_for": what(gate) + _TIMED_OUT}
    return Approval(False, updates, (Notify("ApprovalTimedOut", message, warning=True),))


def refusal(tick: Tick, command: Command) -> str | None:
    """Why an approve/reject decides nothing now; None when it decides the gate that waits."""
    status = tick.status
    record = pending(status)
    if command.revision and command.revision != status.revision:
        return (
            f"nothing decided: that message is about revision {command.revision}, and the "
            f"rollout is on {status.revision or 'nothing'} now"
        )
    if status.phase not in DECIDABLE or record is None:
        last = status.approvals[-1] if status.approvals else None
        if last is not None and last.decision is not None and command.gate in ("", last.gate):
            return f"nothing decided: {what(last.gate)} was already {_told(last)}"
        return f"nothing decided: no approval waits (the rollout is {status.phase or 'new'})"
    if command.gate and command.gate != record.gate:
        return f"nothing decided: {what(command.gate)} no longer waits ({what(record.gate)} does)"
    return None


def decided(tick: Tick, command: Command) -> tuple[dict[str, Any], Notify]:
    """The status update recording `command`'s decision of the gate that waits, and its notice."""
    record = pending(tick.status)
    assert record is not None
    assert command.verb in (Verb.APPROVE, Verb.REJECT)
    decision = Decision.APPROVED if command.verb is Verb.APPROVE else Decision.REJECTED
    done = record.model_copy(
        update={
            "decision": decision,
            "by": command.by or "someone",
            "via": command.via or "cli",
            "decided_at": tick.now,
        }
    )
    notice = Notify(
        "Approved" if decision is Decision.APPROVED else "Rejected",
        f"{what(record.gate)}: {_told(done)}",
        warning=decision is Decision.REJECTED,
    )
    return {"approvals": _replaced(tick.status, done)}, notice


def _told(record: ApprovalRecord) -> str:
    if record.decision is Decision.TIMED_OUT:
        return "timed out"
    when = record.decided_at.strftime("%H:%M:%SZ") if record.decided_at else "?"
    return f"{record.decision} by {record.by} via {record.via} at {when}"


def record_of(status: CanaryStatus, gate: str) -> ApprovalRecord | None:
    for record in reversed(status.approvals):
        if record.gate == gate and record.revision == status.revision:
            return record
    return None


def _replaced(status: CanaryStatus, record: ApprovalRecord) -> tuple[ApprovalRecord, ...]:
    kept = [
        r for r in status.approvals if not (r.gate == record.gate and r.revision == record.revision)
    ]
    return (*kept, record)
