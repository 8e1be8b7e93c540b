"""What a person or a pipeline asked of the rollout (`canary promote|abort|retry|approve|reject`),
decided.

A command arrives in the Canary's annotations and is handled once: the status records it by id
in `lastCommand`, with whether it was carried out and what came of it, in the same decision
that acts on it. So a command that stays in the annotation (the CLI removes it once it sees the
answer) is never carried out twice, and a controller restarted in between finds it answered.

- abort: roll back now, from any phase that still moves traffic or is about to.
- promote: skip the remaining steps; without `force` once the latest result of each of the
  current step's enforced checks is a pass (failed checks still roll back meanwhile), with
  `force` at once. Either way the canary must be ready first: traffic never goes to a subset
  without ready pods. Kept in `promoteRequested` until the promotion starts.
- retry: start a failed rollout over, the same revision, from the first step.
- approve / reject: decide the approval gate that waits (approvals.py); reject rolls back. From a
  chat message they name the revision and gate the message was about, and decide nothing for
  another one.
While the Canary is suspended nothing moves, so a command other than abort (which the CLI sends
together with lifting the suspension) is answered "paused" and not carried out.
"""

from __future__ import annotations

from typing import Any

from canary.api.commands import Command, CommandResult, Verb
from canary.api.status import Phase
from canary.engine import approvals, records
from canary.engine.tick import Tick

_ABORTABLE = frozenset({Phase.INITIALIZING, Phase.PROGRESSING, Phase.PROMOTING})
_PROMOTABLE = frozenset({Phase.INITIALIZING, Phase.PROGRESSING})


def pending(tick: Tick) -> Command | None:
    """The command this tick must answer: one whose id the status has not answered yet."""
    command = tick.seen.command
    if command is None:
        return None
    answered = tick.status.last_command
    if answered is not None and answered.id == command.id:
        return None
    return command


def answered(tick: Tick, command: Command, *, accepted: bool, message: str) -> dict[str, Any]:
    """The status update that records the answer to `command`."""
    result = CommandResult(
        id=command.id, verb=command.verb, accepted=accepted, message=message, at=tick.now
    )
    return {"last_command": result}


def refusal(tick: Tick, command: Command) -> str | None:
    """Why `command` cannot be carried out now; None when it can."""
    status = tick.status
    phase = status.phase
    where = f"the rollout is {phase or 'not started'}"
    if tick.plan.suspend and command.verb is not Verb.ABORT:
        return f"nothing done: the rollout is paused (spec.suspend); resume it first ({where})"
    if command.verb is Verb.ABORT:
        if phase not in _ABORTABLE:
            return f"nothing to abort: {where}"
        return None
    if command.verb is Verb.PROMOTE:
        if phase not in _PROMOTABLE:
            return f"nothing to promote: {where}"
        if status.promote_requested == "force" or (
            status.promote_requested == "checks" and not command.force
        ):
            return "a promotion is already asked for"
        return None
    if command.verb in (Verb.APPROVE, Verb.REJECT):
        return approvals.refusal(tick, command)
    if phase is not Phase.FAILED:
        return f"nothing to retry: {where}; retry starts a Failed rollout over"
    return None


def with_promotion(tick: Tick, command: Command) -> Tick:
    """The tick, its status asking for the promotion (and answering the command)."""
    how = "force" if command.force else "checks"
    message = (
        "promoting now: the remaining steps and their checks are skipped"
        if command.force
        else "promoting once the latest result of each of the current step's checks is a pass"
    )
    who = f" (asked by {command.by})" if command.by else ""
    updates = {
        "promote_requested": how,
        **answered(tick, command, accepted=True, message=message + who),
    }
    return tick.with_status(records.evolve(tick.status, updates))
