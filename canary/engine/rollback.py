"""Rolling back: every fault cleared and 100% sent back to stable, then, once the data plane
serves that, Failed with the reason the rollback began for (a proven regression's comparison, the
failed checks reaching the threshold, a person's reject...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canary.api.status import Phase
from canary.engine import chaos, conditions, settle
from canary.engine.actions import Action, CallWebhook, ClearFaults, Decision, Notify
from canary.engine.tick import PROPAGATION_POLL, Tick, enter, set_weights


def post_rollout(tick: Tick, outcome: str) -> tuple[CallWebhook, ...]:
    return tuple(CallWebhook(hook=hook, phase=outcome) for hook in tick.plan.post_rollout)


def roll_back(
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
        message=f"{why}{_SENDING_BACK}{tick.status.stable_subset}",
        actions=(*clear, set_weights(tick.status, 0)),
        deadline="fail",
        warning=True,
        judged=judged,
        canary_weight=0,
    )
    return Decision(decision.status, (*notices, *decision.actions), wake_after=PROPAGATION_POLL)


_SENDING_BACK = ": sending 100% back to "


def _why_rolled_back(tick: Tick) -> str:
    """Why this rollback began, as the RollingBack transition said it, for the Failed message:
    the status message is rewritten while the rollback waits for the data plane."""
    for condition in tick.status.conditions:
        if condition.type == conditions.PROGRESSING and condition.reason == "RollingBack":
            return condition.message.partition(_SENDING_BACK)[0]
    return ""


def rolling_back(tick: Tick) -> Decision:
    unsettled = settle.settled(tick, 0)
    if unsettled is not None:
        return unsettled
    stable = tick.status.stable_subset
    why = _why_rolled_back(tick)
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
        message=f"rolled back: {stable} receives 100%{f' ({why})' if why else ''}",
        actions=post_rollout(tick, "Failed"),
        warning=True,
        step_started_at=None,
    )
