"""`decide(spec, status, observation, now) -> Decision`: the whole state machine's entry.

Before any phase runs, the rules that hold in every phase are applied in this order, each one
able to end the tick:
1. problems found while observing (a missing VirtualService...) make the Canary Invalid, and
   nothing is patched until they are fixed;
2. a command not answered yet (`canary abort|promote|retry`, see commands.py) is answered;
3. `suspend` freezes the rollout; lifting it shifts every stored clock by the time spent frozen,
   so a step does not count frozen time as time held;
4. a new revision (a changed spec or pod template) starts the rollout over from the first step,
   from the subset the route serves now (releases.py);
5. a passed deadline takes its phase's declared action.
Every event the decision tells is also told to the `event` webhooks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from canary.api.commands import Command, Verb
from canary.api.spec import CanarySpec
from canary.api.status import TERMINAL_PHASES, CanaryStatus, Phase
from canary.engine import (
    approvals,
    chaos,
    commands,
    conditions,
    deletion,
    phases,
    plan,
    preflight,
    records,
    releases,
)
from canary.engine.actions import Action, CallWebhook, Decision, Notify
from canary.engine.invalid import invalid
from canary.engine.observation import Observation
from canary.engine.tick import Tick, enter

_PHASES = {
    Phase.INITIALIZING: phases.initializing,
    Phase.PROGRESSING: phases.progressing,
    Phase.PROMOTING: phases.promoting,
    Phase.ROLLING_BACK: phases.rolling_back,
}


def decide(
    spec: CanarySpec, status: CanaryStatus, observation: Observation, now: datetime
) -> Decision:
    tick = Tick(spec, status, observation, now, plan.of(spec))
    # A deleted Canary is decided by deletion.py alone (its faults, its route, letting it go).
    decision = deletion.decided(tick) if observation.deleting_since else _decided(tick)
    if observation.faults != ():
        # Any fault in place that no running experiment accounts for goes first of all.
        decision = chaos.clear_strays(tick, decision)
    if observation.generation and decision.status.observed_generation != observation.generation:
        observed = {"observed_generation": observation.generation}
        decision = Decision(
            records.evolve(decision.status, observed), decision.actions, decision.wake_after
        )
    if tick.plan.event:
        decision = _told(tick, decision)
    return _notified(tick, decision)


def _notified(tick: Tick, decision: Decision) -> Decision:
    """The Notified condition as the chat backends stand; unchanged (no copy) most ticks."""
    problems = tick.seen.chat_problems
    if not problems and not tick.spec.notifications:
        # Most Canaries notify nobody: no scan of the conditions on their every tick (a
        # Canary whose notifications were removed restarts, which drops the condition).
        return decision
    current = None
    for condition in decision.status.conditions:
        if condition.type == conditions.NOTIFIED:
            current = condition
            break
    if not problems and (current is None or current.status == "True"):
        return decision
    message = "; ".join(problems)
    wanted: Literal["True", "False"] = "False" if problems else "True"
    if current is not None and (current.status, current.message) == (wanted, message):
        return decision
    updated = conditions.with_condition(
        decision.status.conditions,
        type=conditions.NOTIFIED,
        status=wanted,
        reason="ChatFailing" if problems else "ChatDelivered",
        message=message,
        now=tick.now,
    )
    status = records.evolve(decision.status, {"conditions": updated})
    return Decision(status, decision.actions, decision.wake_after)


def _told(tick: Tick, decision: Decision) -> Decision:
    """The decision with each of its events also sent to every `event` webhook."""
    phase = str(decision.status.phase or "")
    calls: list[Action] = [
        CallWebhook(hook=hook, phase=phase, event=action)
        for action in decision.actions
        if isinstance(action, Notify)
        for hook in tick.plan.event
    ]
    if not calls:
        return decision
    return Decision(decision.status, (*decision.actions, *calls), decision.wake_after)


def _decided(tick: Tick) -> Decision:
    status, observation, now = tick.status, tick.seen, tick.now
    if observation.problems:
        return invalid(
            status, observation.problems, now=now, revision=observation.revision, seen=observation
        )
    command = commands.pending(tick)
    if command is not None:
        answered = _commanded(tick, command)
        if isinstance(answered, Decision):
            return answered
        tick = answered
    if tick.plan.suspend:
        return _suspended(tick)
    notices: tuple[Notify, ...] = ()
    if tick.status.suspended_at is not None:
        tick, notices = _resumed(tick)
    decision = _run(tick)
    if notices:
        return Decision(decision.status, (*notices, *decision.actions), decision.wake_after)
    return decision


def _commanded(tick: Tick, command: Command) -> Decision | Tick:
    """The command answered: a decision when it acts at once (abort, retry), otherwise the tick
    to run on, with the answer (and a promotion asked for) in its status."""
    refused = commands.refusal(tick, command)
    who = f" by {command.by}" if command.by else ""
    if refused is not None:
        updates = commands.answered(tick, command, accepted=False, message=refused)
        return tick.with_status(records.evolve(tick.status, updates))
    if command.verb is Verb.PROMOTE:
        return commands.with_promotion(tick, command)
    if command.verb in (Verb.APPROVE, Verb.REJECT):
        recorded, notice = approvals.decided(tick, command)
        updates = {
            **recorded,
            **commands.answered(tick, command, accepted=True, message=notice.message),
        }
        tick = tick.with_status(records.evolve(tick.status, updates))
        if command.verb is Verb.REJECT:
            rolled = phases.roll_back(tick, notice.message)
            return Decision(rolled.status, (notice, *rolled.actions), rolled.wake_after)
        # Approved: the gate opens in this same tick, where the phase reads the record back.
        decision = _run(tick)
        return Decision(decision.status, (notice, *decision.actions), decision.wake_after)
    if command.verb is Verb.ABORT:
        why = f"aborted{who} (canary abort)"
        updates = commands.answered(tick, command, accepted=True, message=f"rolling back: {why}")
        return phases.roll_back(tick.with_status(records.evolve(tick.status, updates)), why)
    updates = commands.answered(
        tick, command, accepted=True, message=f"starting over from the first step{who}"
    )
    return _start(tick.with_status(records.evolve(tick.status, updates)), retried=True)


def _run(tick: Tick) -> Decision:
    status = tick.status
    phase = status.phase
    if phase is None or status.revision != tick.seen.revision:
        return _start(tick)
    if phase in TERMINAL_PHASES:
        if phase is Phase.INVALID:
            # Whatever was wrong has been fixed (the observation found no problem this time).
            return _start(tick)
        if phase is Phase.SUCCEEDED:
            return phases.succeeded(tick)
        return Decision(status=status)
    # A closed gate waits as long as it takes (see gates.py); the deadline restarts when it opens.
    if status.deadline_at is not None and tick.now >= status.deadline_at and not status.waiting_for:
        return _deadline_passed(tick)
    return _PHASES[phase](tick)


def _start(tick: Tick, *, retried: bool = False) -> Decision:
    status, seen = tick.status, tick.seen
    try:
        stable = releases.stable_side(
            tick.spec, status, None if seen.traffic is None else seen.traffic.weights
        )
    except releases.Ambiguous as exc:
        return invalid(status, (str(exc),), now=tick.now, revision=seen.revision, seen=seen)
    restarting = status.phase is not None and status.phase not in TERMINAL_PHASES
    canary = tick.plan.canary_subset
    if retried:
        reason, why = "RolloutRetried", " (canary retry: starting over from the first step)"
    elif restarting and status.target_revision and status.target_revision != seen.target_revision:
        target = tick.spec.canary.target_ref
        reason = "RolloutRestarted"
        why = (
            f" (a new pod template in Deployment {target.name if target else '?'}: starting "
            "over from the first step)"
        )
    elif restarting:
        reason, why = "RolloutRestarted", " (the spec changed: starting over from the first step)"
    else:
        reason, why = "RolloutStarted", ""
    cleared = conditions.with_condition(
        status.conditions,
        type=conditions.INVALID_SPEC,
        status="False",
        reason="Valid",
        message="",
        now=tick.now,
    )
    # Each says how the last rollout ended (or was left), not how this one goes.
    cleared = tuple(
        c
        for c in cleared
        if c.type
        not in (
            conditions.ROLLBACK_VERIFIED,
            conditions.STABLE_RESTORED,
            conditions.NOTIFIED,
            # Each rollout is checked before its own first step.
            preflight.PREFLIGHT,
        )
    )
    # Given as the conditions enter() starts from, not as one of its updates, which would
    # replace the Progressing condition it sets (and that initializing reads back).
    started = enter(
        tick,
        Phase.INITIALIZING,
        base=cleared,
        reason=reason,
        message=f"rolling out {canary} in place of {stable.subset}{stable.note}{why}",
        revision=seen.revision,
        target_revision=seen.target_revision,
        stable_subset=stable.subset,
        stable_target=stable.target,
        canary_subset=canary,
        promote_requested=None,
        canary_weight=0,
        step=0,
        failed_checks=0,
        step_started_at=None,
        last_check_at=None,
        checks=(),
        chaos=(),
        approvals=(),
        sequential=(),
    )
    following = phases.initializing(tick.with_status(started.status))
    return Decision(following.status, (*started.actions, *following.actions), following.wake_after)


def _deadline_passed(tick: Tick) -> Decision:
    status = tick.status
    waited = f"{status.phase} passed its deadline while {status.message or 'waiting'}"
    if status.deadline_action == "rollback":
        return phases.roll_back(tick, waited)
    unverified = conditions.with_condition(
        status.conditions,
        type=conditions.ROLLBACK_VERIFIED,
        status="False",
        reason="RollbackUnverified",
        message=waited,
        now=tick.now,
    )
    return enter(
        tick,
        Phase.FAILED,
        base=unverified,
        reason="RollbackUnverified",
        message=f"{waited}: the live route may still send traffic to {status.canary_subset}",
        warning=True,
    )


def _suspended(tick: Tick) -> Decision:
    status = tick.status
    if status.suspended_at is not None:
        return Decision(status=status)
    frozen = conditions.with_condition(
        status.conditions,
        type=conditions.SUSPENDED,
        status="True",
        reason="Suspended",
        message="spec.suspend is set: no weight change and no check until it is lifted",
        now=tick.now,
    )
    updates: dict[str, object] = {"suspended_at": tick.now, "conditions": frozen}
    experiment = chaos.running(status.chaos, status.revision)
    if experiment is not None:
        # Forgotten, so it runs again in full after the suspension; its fault, no longer
        # accounted for, is cleared at once.
        updates["chaos"] = tuple(result for result in status.chaos if result is not experiment)
    status = records.evolve(status, updates)
    return Decision(status=status, actions=(Notify("Suspended", "the rollout is suspended"),))


def _resumed(tick: Tick) -> tuple[Tick, tuple[Notify, ...]]:
    status = tick.status
    assert status.suspended_at is not None
    # A suspendedAt in the future (a hand edit, a clock that went back) froze nothing: shifting
    # by a negative span would move every clock back, possibly before the status can hold.
    frozen_for = max(tick.now - status.suspended_at, timedelta(0))

    def shifted(moment: datetime | None) -> datetime | None:
        return None if moment is None else moment + frozen_for

    thawed = conditions.with_condition(
        status.conditions,
        type=conditions.SUSPENDED,
        status="False",
        reason="Resumed",
        message="",
        now=tick.now,
    )
    status = records.evolve(
        status,
        {
            "suspended_at": None,
            "step_started_at": shifted(status.step_started_at),
            "data_wait_from": shifted(status.data_wait_from),
            "last_check_at": shifted(status.last_check_at),
            "deadline_at": shifted(status.deadline_at),
            "conditions": thawed,
        },
    )
    seconds = frozen_for / timedelta(seconds=1)
    return tick.with_status(status), (Notify("Resumed", f"resumed after {seconds:g}s"),)
