"""One function per non-terminal phase: what it waits for, and where it goes next.

Each phase is level-triggered: it compares the live split with the one it wants and asks for
the weights again while they differ, so a restarted controller, a lost write or another writer's
edit all heal the same way. Entering a phase sets its deadline (see decide.py for what happens
when one passes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from canary.api.people import Gate
from canary.api.status import ChaosPhase, ChaosResult, Phase
from canary.engine import (
    approvals,
    chaos,
    checks,
    conditions,
    gates,
    preflight,
    records,
    settle,
)
from canary.engine.actions import (
    Action,
    CallWebhook,
    ClearFaults,
    Decision,
    Notify,
    ScaleToZero,
)
from canary.engine.tick import (
    PROPAGATION_POLL,
    Tick,
    elapsed,
    enter,
    set_weights,
    waiting,
)


def _post_rollout(tick: Tick, outcome: str) -> tuple[CallWebhook, ...]:
    return tuple(CallWebhook(hook=hook, phase=outcome) for hook in tick.plan.post_rollout)


def _replaced_a_rollout(tick: Tick) -> bool:
    """Whether this rollout started over one still in progress (see decide._start).

    That one's own step or promotion may have put the canary at 100%, which is then no sign of
    an earlier promotion: the new revision starts from stable like any other. The Progressing
    condition keeps the reason until the first step, so a tick that still reads the old split
    does not mistake it either.
    """
    return any(
        condition.type == conditions.PROGRESSING and condition.reason == "RolloutRestarted"
        for condition in tick.status.conditions
    )


def initializing(tick: Tick) -> Decision:
    spec, plan, seen = tick.spec, tick.plan, tick.seen
    if (
        seen.traffic is not None
        and seen.traffic.weights.get(plan.canary_subset) == 100
        and not _replaced_a_rollout(tick)
    ):
        return enter(
            tick,
            Phase.SUCCEEDED,
            reason="AlreadyPromoted",
            message=f"{plan.canary_subset} already receives 100% of the traffic",
            stable_subset=plan.canary_subset,
            canary_weight=100,
        )
    unsettled = settle.settled(tick, 0)
    if unsettled is not None:
        return unsettled
    asked = gates.rollback_asked(tick, plan.rollback)
    if asked is not None:
        return _roll_back(_with(tick, asked[1]), asked[0])
    # canary promote --force skips the gates, a person having said yes; never the readiness:
    # traffic never goes to a canary without ready pods.
    forced = tick.status.promote_requested == "force"
    if not forced:
        gate = gates.confirm(tick, plan.confirm_rollout, kind="confirm-rollout", from_records=True)
        tick = _with(tick, gate.updates)
        if not gate.open:
            return _held(tick, gate)
        approval = approvals.check(tick, approvals.gate_before_step(0))
        tick = _with(tick, approval.updates)
        if not approval.open:
            return _approval_held(tick, approval)
    if seen.target_ready is False:
        assert spec.canary.target_ref is not None
        return waiting(tick, f"waiting for Deployment {spec.canary.target_ref.name} to be ready")
    judged = preflight.check(tick.status.conditions, seen.preflight, tick.now)
    if judged is not None:
        checked_conditions, told, why = judged
        if checked_conditions is not tick.status.conditions:
            tick = _with(tick, {"conditions": checked_conditions})
        if why:
            decision = waiting(tick, why)
            return Decision(decision.status, (*told, *decision.actions))
        if told:
            following = _after_preflight(tick, forced)
            return Decision(following.status, (*told, *following.actions), following.wake_after)
    return _after_preflight(tick, forced)


def _after_preflight(tick: Tick, forced: bool) -> Decision:
    plan = tick.plan
    pre_rollout = () if forced else plan.pre_rollout
    if pre_rollout:
        checked = checks.run(tick, gates=pre_rollout)
        if checked.updates:
            tick = tick.with_status(records.evolve(tick.status, checked.updates))
        if checked.failed_checks >= plan.threshold:
            return _roll_back(tick, "pre-rollout webhooks failed", checked.notices)
        refused = [h.name for h in pre_rollout if not _gate_open(tick, h.name)]
        if refused:
            decision = waiting(tick, f"waiting for pre-rollout webhook(s) {', '.join(refused)}")
            return Decision(decision.status, (*checked.notices, *decision.actions))
    if plan.skip_analysis:
        return _promote(tick, "skipAnalysis is set: promoting without steps")
    if tick.status.promote_requested is not None:
        return _promote(tick, "canary promote: skipping the steps")
    return _start_step(tick, 0)


def _with(tick: Tick, updates: Mapping[str, Any]) -> Tick:
    return tick.with_status(records.evolve(tick.status, updates)) if updates else tick


def _held(tick: Tick, gate: gates.Gate) -> Decision:
    """Waiting on a closed gate (its updates already in the tick), saying so once."""
    decision = waiting(tick, f"waiting for {tick.status.waiting_for} to say yes")
    return Decision(decision.status, (*gate.notices, *decision.actions), decision.wake_after)


def _approval_held(tick: Tick, approval: approvals.Approval) -> Decision:
    """Waiting on a person (or rolling back, the gate having timed out)."""
    if approval.roll_back:
        return _roll_back(tick, approval.roll_back, approval.notices)
    decision = waiting(tick, f"waiting for {tick.status.waiting_for}")
    return Decision(decision.status, (*approval.notices, *decision.actions), decision.wake_after)


def _gate_open(tick: Tick, name: str) -> bool:
    answer = tick.seen.gates.get(name)
    return answer is not None and answer.passed


def _start_step(tick: Tick, step: int, judged: Mapping[str, Any] | None = None) -> Decision:
    weights = tick.plan.weights
    weight = weights[step]
    status = tick.status
    return enter(
        tick,
        Phase.PROGRESSING,
        reason="StepStarted" if step == 0 else "StepAdvanced",
        message=f"step {step + 1}/{len(weights)}: weight {weight}",
        actions=(set_weights(status, weight),),
        judged=judged,
        step=step,
        canary_weight=weight,
        step_started_at=None,
    )


def progressing(tick: Tick) -> Decision:
    status, plan = tick.status, tick.plan
    unsettled = settle.settled(tick, status.canary_weight)
    if unsettled is not None:
        return unsettled
    # Read once and handed on: nothing below moves the step's clock.
    step_started_at = status.step_started_at
    if step_started_at is None:
        # The step's clock starts now that Envoy serves its weights, and its deadline with it.
        started = records.evolve(
            status,
            {
                "step_started_at": tick.now,
                "data_wait_from": tick.now,
                "deadline_at": tick.now + plan.step_deadline,
                "message": f"step {status.step + 1}/{len(plan.weights)}: weight "
                f"{status.canary_weight} is live",
            },
        )
        return Decision(started)
    if status.chaos:
        experiment = chaos.running(status.chaos, status.revision)
        if experiment is not None:
            return _chaos_held(tick, experiment)
    if tick.seen.chaos_request is not None:
        request = chaos.requested(tick)
        if request is not None:
            return chaos.start(tick, request, None)
    if tick.seen.measurements and _came_back(tick, step_started_at):
        # Nobody could have seen data while the controller was away (and the data plane may be
        # new, as after a demo restart): the no-data grace starts again rather than being spent.
        tick = tick.with_status(records.evolve(status, {"data_wait_from": tick.now}))
    asked = gates.rollback_asked(tick, plan.rollback)
    if asked is not None:
        return _roll_back(_with(tick, asked[1]), asked[0])
    checked = checks.run(tick, gates=plan.rollout)
    if checked.regression:
        # Proven at the stated alpha: waiting for `threshold` failures would only expose more
        # users to a canary already known to be worse.
        return _roll_back(tick, checked.regression, checked.notices, checked.updates)
    if checked.failed_checks >= plan.threshold:
        return _roll_back(
            tick,
            f"{checked.failed_checks} failed checks reached the threshold {plan.threshold}",
            checked.notices,
            checked.updates,
        )
    promotion = tick.status.promote_requested
    if promotion == "force" or (promotion == "checks" and checks.step_passed(tick, checked)):
        why = (
            "canary promote --force: skipping the remaining steps"
            if promotion == "force"
            else f"canary promote: step {status.step + 1}'s checks passed, skipping the rest"
        )
        decision = _promote(tick, why, checked.updates)
        return Decision(decision.status, (*checked.notices, *decision.actions), decision.wake_after)
    decision = _advance(tick, step_started_at, checked)
    if not checked.notices:
        return decision
    return Decision(decision.status, (*checked.notices, *decision.actions), decision.wake_after)


def _chaos_held(tick: Tick, experiment: ChaosResult) -> Decision:
    decision = chaos.hold(tick, experiment)
    ended = chaos.running(decision.status.chaos, decision.status.revision) is None
    if not ended:
        return decision
    failed = any(
        result.name == experiment.name
        and result.revision == experiment.revision
        and result.phase is ChaosPhase.FAILED
        for result in decision.status.chaos
    )
    if failed and experiment.trial.on_failure == "rollback":
        notices = tuple(a for a in decision.actions if isinstance(a, Notify))
        return _roll_back(
            tick.with_status(decision.status),
            f"chaos experiment {experiment.name} failed",
            notices,
        )
    return decision


def _came_back(tick: Tick, step_started_at: datetime) -> bool:
    last_check_at = tick.status.last_check_at
    last = step_started_at
    if last_check_at is not None and last_check_at > last:
        last = last_check_at
    return (tick.now - last).total_seconds() > 2 * tick.plan.check_interval


def _advance(tick: Tick, step_started_at: datetime, checked: checks.Checked) -> Decision:
    """The step holds, waits for its checks, or moves on; with this tick's judging in the status."""
    status, plan, judged = tick.status, tick.plan, checked.updates
    early: tuple[Notify, ...] = ()
    if not elapsed(tick.since(step_started_at), plan.interval):
        if not (plan.advance_early and checked.equivalent and checks.step_passed(tick, checked)):
            return Decision(records.evolve(status, judged) if judged else status)
        held = tick.since(step_started_at)
        early = (
            Notify(
                "AdvancedEarly",
                f"step {status.step + 1}: every comparison with stable has shown equivalence "
                f"and every check passed after {held:.0f}s of {plan.interval:g}s",
            ),
        )
    if not checks.step_passed(tick, checked):
        message = f"step {status.step + 1}: waiting for every check to pass"
        return waiting(tick, message, judged=judged)
    if plan.chaos:
        experiment = chaos.pending(tick)
        if experiment is not None:
            return chaos.start(tick, experiment, judged)
        quiet = chaos.quiet_until(plan, status)
        if quiet is not None and tick.now < quiet:
            left = (quiet - tick.now).total_seconds()
            message = f"step {status.step + 1}: letting the fault leave the metric windows"
            decision = waiting(tick, message, judged=judged)
            return Decision(decision.status, wake_after=left)
    step = status.step
    last = step + 1 >= len(plan.weights)
    # The gate's answers go into the status after this tick's judging, not beside it.
    tick = _with(tick, judged)
    gate = gates.confirm(
        tick,
        plan.confirm_promotion if last else plan.confirm_traffic_increase,
        kind="confirm-promotion" if last else "confirm-traffic-increase",
    )
    tick = _with(tick, gate.updates)
    if not gate.open:
        return _held(tick, gate)
    if tick.status.promote_requested != "force":
        approval = approvals.check(
            tick, Gate.PROMOTION.value if last else approvals.gate_before_step(step + 1)
        )
        tick = _with(tick, approval.updates)
        if not approval.open:
            return _approval_held(tick, approval)
    moved = _start_step(tick, step + 1) if not last else None
    if moved is None:
        moved = _promote(tick, f"all {len(plan.weights)} steps passed")
    if early:
        return Decision(moved.status, (*early, *moved.actions), moved.wake_after)
    return moved


def _promote(tick: Tick, why: str, judged: Mapping[str, Any] | None = None) -> Decision:
    return enter(
        tick,
        Phase.PROMOTING,
        reason="Promoting",
        message=f"{why}: sending 100% to {tick.status.canary_subset}",
        actions=(set_weights(tick.status, 100),),
        judged=judged,
        canary_weight=100,
    )


def promoting(tick: Tick) -> Decision:
    unsettled = settle.settled(tick, 100)
    if unsettled is not None:
        return unsettled
    status = tick.status
    canary = status.canary_subset
    target = tick.spec.canary.target_ref
    promoted_target = "" if target is None else target.name
    # The Deployment that served the stable subset until now is retired; scaleDownAfter scales
    # it to zero once the promotion has held (never the one that serves now).
    retired = status.stable_target if status.stable_target != promoted_target else ""
    return enter(
        tick,
        Phase.SUCCEEDED,
        reason="Promoted",
        message=f"{canary} receives 100% and is now the stable subset",
        actions=_post_rollout(tick, "Succeeded"),
        stable_subset=canary,
        stable_target=promoted_target,
        retired_target=retired,
        scaled_down_at=None,
        step_started_at=None,
    )


def succeeded(tick: Tick) -> Decision:
    """A promotion that has held `scaleDownAfter` scales the retired Deployment to zero, once,
    and only while the route sends everything to the promoted subset."""
    status, plan = tick.status, tick.plan
    after, since = plan.scale_down_after, status.last_transition_time
    if after is None or not status.retired_target or status.scaled_down_at is not None:
        return Decision(status)
    if since is None or not elapsed(tick.since(since), after):
        return Decision(status, wake_after=max(1.0, after - tick.since(since)))
    traffic = tick.seen.traffic
    if traffic is None or traffic.weights.get(status.stable_subset) != 100:
        return Decision(status)
    message = (
        f"scaled Deployment {status.retired_target} to zero: {status.stable_subset} has served "
        f"100% for {after:g}s"
    )
    updated = records.evolve(status, {"scaled_down_at": tick.now})
    return Decision(updated, (ScaleToZero(status.retired_target), Notify("ScaledDown", message)))


def _roll_back(
    tick: Tick,
    why: str,
    notices: tuple[Notify, ...] = (),
    judged: Mapping[str, Any] | None = None,
) -> Decision:
    stopped = chaos.interrupted(tick, f"rolled back: {why}")
    if stopped:
        judged = {**(judged or {}), **stopped}
    # Every fault goes before the weights move: a rollback must not leave the canary failing
    # on purpose, whether or not this controller remembers injecting it.
    clear: tuple[Action, ...] = ()
    if stopped or tick.seen.faults or tick.seen.faults is None:
        clear = (ClearFaults("rolling back"),)
    decision = enter(
        tick,
        Phase.ROLLING_BACK,
        reason="RollingBack",
        message=f"{why}: sending 100% back to {tick.status.stable_subset}",
        actions=(*clear, set_weights(tick.status, 0)),
        deadline="fail",
        warning=True,
        judged=judged,
        canary_weight=0,
    )
    return Decision(decision.status, (*notices, *decision.actions), wake_after=PROPAGATION_POLL)


def roll_back(tick: Tick, why: str) -> Decision:
    return _roll_back(tick, why)


def rolling_back(tick: Tick) -> Decision:
    unsettled = settle.settled(tick, 0)
    if unsettled is not None:
        return unsettled
    stable = tick.status.stable_subset
    verified = conditions.with_condition(
        tick.status.conditions,
        type=conditions.ROLLBACK_VERIFIED,
        status="True",
        reason="RolledBack",
        message=f"the live route sends 100% to {stable} and the data plane applied it",
        now=tick.now,
    )
    return enter(
        tick,
        Phase.FAILED,
        base=verified,
        reason="RolledBack",
        message=f"rolled back: {stable} receives 100%",
        actions=_post_rollout(tick, "Failed"),
        warning=True,
        step_started_at=None,
    )
