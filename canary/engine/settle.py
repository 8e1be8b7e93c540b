"""Making the live route serve a phase's split, and telling our own write on its way from drift.

Every phase that moves traffic asks `settled` first: it compares the live split with the one the
phase wants, asks for the weights again while they differ (so a restarted controller, a lost
write or another writer's edit all heal the same way), and says when the data plane applied
them, so no clock starts before traffic really moved.
"""

from __future__ import annotations

from canary.api.status import Phase
from canary.engine import conditions, records
from canary.engine.actions import Decision, Notify
from canary.engine.tick import PROPAGATION_POLL, Tick, set_weights, split_matches, waiting


def settled(tick: Tick, canary_weight: int) -> Decision | None:
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
