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

from canary.api.status import ChaosPhase, ChaosResult, Phase
from canary.engine import chaos, checks, conditions, records
from canary.engine.actions import Action, CallWebhook, ClearFaults, Decision, Notify
from canary.engine.tick import (
    PROPAGATION_POLL,
    Tick,
    elapsed,
    enter,
    set_weights,
    split_matches,
    waiting,
)


def _settled(tick: Tick, canary_weight: int) -> Decision | None:
    """None once the live route serves `canary_weight` and the data plane applied it."""
    status, traffic = tick.status, tick.seen.traffic
    if traffic is None:
        return waiting(tick, "the managed route could not be read", poll=True)
    if not split_matches(
        tick.seen,
        stable=status.stable_subset,
        canary=status.canary_subset,
        canary_weight=canary_weight,
    ):
        drifted = _drifted(tick, canary_weight)
        if drifted is not None:
            return drifted
        return waiting(
            tick,
            f"setting weights {100 - canary_weight}/{canary_weight}",
            set_weights(status, canary_weight),
            poll=True,
        )
    if conditions.is_true(status.conditions, conditions.DRIFTED):
        message = f"the route sends {100 - canary_weight}/{canary_weight} again"
        restored = conditions.with_condition(
            status.conditions,
            type=conditions.DRIFTED,
            status="False",
            reason="WeightsRestored",
            message=message,
            now=tick.now,
        )
        return Decision(
            status=records.evolve(status, {"conditions": restored, "message": message}),
            actions=(Notify("WeightsRestored", message),),
            wake_after=PROPAGATION_POLL,
        )
    if not traffic.applied:
        return waiting(tick, "waiting for the data plane to apply the new weights", poll=True)
    return None


def _drifted(tick: Tick, canary_weight: int) -> Decision | None:
    """Someone else moved the weights of a live step (or did, and we are paused on it).

    Only a step whose weights were live can drift: before that, a differing split is our own
    write still on its way, or the object as its author wrote it. The step's clock starts over
    either way, since what was measured meanwhile judged a split nobody chose.
    """
    status, traffic = tick.status, tick.seen.traffic
    assert traffic is not None
    in_step = status.phase is Phase.PROGRESSING
    # Only a step pauses: a rollback or a promotion writes whatever anyone else did.
    paused = in_step and conditions.is_true(status.conditions, conditions.DRIFTED)
    live_step = in_step and status.step_started_at is not None
    if not paused and (not live_step or traffic.writer is None):
        return None
    wanted = f"{100 - canary_weight}/{canary_weight}"
    live = ", ".join(
        f"{subset or '-'}={weight}" for subset, weight in sorted(traffic.weights.items())
    )
    who = traffic.writer or "another writer"
    if not tick.plan.pause_on_drift:
        message = f"{who} changed the weights to {live}; writing {wanted} back"
        decision = waiting(tick, message, set_weights(status, canary_weight), poll=True)
        restarted = records.evolve(decision.status, {"step_started_at": None})
        return Decision(
            restarted,
            (Notify("WeightsDrifted", message, warning=True), *decision.actions),
            wake_after=decision.wake_after,
        )
    message = f"{who} changed the weights to {live}; paused until the route sends {wanted} again"
    if paused:
        return waiting(tick, message)
    status = records.evolve(
        status,
        {
            "step_started_at": None,
            "message": message,
            "conditions": conditions.with_condition(
                status.conditions,
                type=conditions.DRIFTED,
                status="True",
                reason="WeightsDrifted",
                message=message,
                now=tick.now,
            ),
        },
    )
    return Decision(status, (Notify("WeightsDrifted", message, warning=True),))


def _post_rollout(tick: Tick, outcome: str) -> tuple[CallWebhook, ...]:
    return tuple(CallWebhook(hook=hook, outcome=outcome) for hook in tick.plan.post_rollout)


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
    unsettled = _settled(tick, 0)
    if unsettled is not None:
        return unsettled
    if seen.target_ready is False:
        assert spec.canary.target_ref is not None
        return waiting(tick, f"waiting for Deployment {spec.canary.target_ref.name} to be ready")
    pre_rollout = plan.pre_rollout
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
    return _start_step(tick, 0)


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
    unsettled = _settled(tick, status.canary_weight)
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
    checked = checks.run(tick, gates=plan.rollout)
    if checked.failed_checks >= plan.threshold:
        return _roll_back(
            tick,
            f"{checked.failed_checks} failed checks reached the threshold {plan.threshold}",
            checked.notices,
            checked.updates,
        )
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
    if not elapsed(tick.since(step_started_at), plan.interval):
        return Decision(records.evolve(status, judged) if judged else status)
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
    if step + 1 < len(plan.weights):
        return _start_step(tick, step + 1, judged)
    unconfirmed = [h.name for h in plan.confirm_promotion if not _gate_open(tick, h.name)]
    if unconfirmed:
        message = f"waiting for confirm-promotion webhook(s) {', '.join(unconfirmed)}"
        return waiting(tick, message, judged=judged)
    return _promote(tick, f"all {len(plan.weights)} steps passed", judged)


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
    unsettled = _settled(tick, 100)
    if unsettled is not None:
        return unsettled
    canary = tick.status.canary_subset
    return enter(
        tick,
        Phase.SUCCEEDED,
        reason="Promoted",
        message=f"{canary} receives 100% and is now the stable subset",
        actions=_post_rollout(tick, "succeeded"),
        stable_subset=canary,
        step_started_at=None,
    )


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
    unsettled = _settled(tick, 0)
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
        actions=_post_rollout(tick, "failed"),
        warning=True,
        step_started_at=None,
    )
