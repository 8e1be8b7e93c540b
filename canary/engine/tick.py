"""One tick's inputs, and the small helpers every phase uses to move on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from canary.api.spec import CanarySpec
from canary.api.status import TERMINAL_PHASES, CanaryStatus, Condition, Phase
from canary.engine import conditions, records
from canary.engine.actions import Action, Decision, Notify, SetWeights
from canary.engine.observation import Observation
from canary.engine.plan import Plan, held_after

# How soon to look again while waiting on something that usually takes a second or two (a new
# split reaching Envoy), instead of a whole check interval later.
PROPAGATION_POLL = 1.0


# Not frozen: a frozen dataclass pays an object.__setattr__ per field on every construction, and
# a Tick is built several times per decide; nothing assigns to one after it is made.
@dataclass(slots=True)
class Tick:
    spec: CanarySpec
    status: CanaryStatus
    seen: Observation
    now: datetime
    # What the phases read from `spec`, read once per spec object (see engine/plan.py).
    plan: Plan

    def with_status(self, status: CanaryStatus) -> Tick:
        return Tick(self.spec, status, self.seen, self.now, self.plan)

    def since(self, moment: datetime | None) -> float:
        return 0.0 if moment is None else (self.now - moment).total_seconds()


def elapsed(waited: float, period: float) -> bool:
    return waited >= held_after(period)


def split_matches(seen: Observation, *, stable: str, canary: str, canary_weight: int) -> bool:
    """Whether the live route sends exactly `canary_weight` to canary and the rest to stable."""
    if seen.traffic is None:
        return False
    live: Mapping[str, int] = seen.traffic.weights
    # A subset the spec does not name must get nothing.
    for subset, weight in live.items():
        expected = (
            canary_weight if subset == canary else 100 - canary_weight if subset == stable else 0
        )
        if weight != expected:
            return False
    if live.get(stable, 0) != 100 - canary_weight:
        return False
    return live.get(canary, 0) == canary_weight


def set_weights(status: CanaryStatus, canary_weight: int) -> SetWeights:
    return SetWeights(status.stable_subset, status.canary_subset, canary_weight)


def enter(
    tick: Tick,
    phase: Phase,
    *,
    reason: str,
    message: str,
    actions: tuple[Action, ...] = (),
    deadline: Literal["rollback", "fail"] | None = "rollback",
    warning: bool = False,
    judged: Mapping[str, Any] | None = None,
    base: tuple[Condition, ...] | None = None,
    **updates: Any,
) -> Decision:
    """Move to `phase`, with its deadline, its Progressing condition and one Notify.

    `judged`: what this tick's checks changed (checks.Checked.updates), so that a tick that
    judges and moves on copies the status once. `base`: the conditions to set Progressing in,
    when the tick changed others first (the status's own by default); given here rather than
    in a copy of the status, for the same reason.
    """
    status = tick.status
    terminal = phase in TERMINAL_PHASES
    with_condition = conditions.with_condition(
        status.conditions if base is None else base,
        type=conditions.PROGRESSING,
        status="False" if terminal else "True",
        reason=reason,
        message=message,
        now=tick.now,
    )
    promoted = _PROMOTED.get(phase)
    if promoted is not None:
        # Flagger's condition, so `kubectl wait canary/NAME --for=condition=Promoted` works.
        with_condition = conditions.with_condition(
            with_condition,
            type=conditions.PROMOTED,
            status=promoted[0],
            reason=promoted[1],
            message=message if terminal else "",
            now=tick.now,
        )
    # waitingFor and the Waiting condition change together (gates.py), so one is enough to ask.
    if status.waiting_for:
        # A new phase or step waits on nothing yet: whatever gate held the last one opened.
        updates.setdefault("waiting_for", "")
        with_condition = conditions.with_condition(
            with_condition,
            type=conditions.WAITING,
            status="False",
            reason="GateOpen",
            message="",
            now=tick.now,
        )
    values = {
        "phase": phase,
        "message": message,
        "last_transition_time": tick.now,
        "deadline_at": None if terminal else tick.now + tick.plan.phase_deadline,
        "deadline_action": None if terminal else deadline,
        "conditions": with_condition,
        **updates,
    }
    if judged:
        values.update(judged)
    status = records.evolve(status, values)
    notify = Notify(reason, message, warning)
    # A new split is confirmed at the next tick: look again soon rather than a check interval
    # later, so the step's clock starts as soon as the data plane serves it.
    writes = any(isinstance(action, SetWeights) for action in actions)
    return Decision(status, (notify, *actions), PROPAGATION_POLL if writes else None)


_PROMOTED: dict[Phase, tuple[Literal["True", "False", "Unknown"], str]] = {
    Phase.INITIALIZING: ("Unknown", "Progressing"),
    Phase.SUCCEEDED: ("True", "Succeeded"),
    Phase.FAILED: ("False", "Failed"),
}


def waiting(
    tick: Tick,
    message: str,
    *actions: Action,
    poll: bool = False,
    judged: Mapping[str, Any] | None = None,
) -> Decision:
    """Stay in the phase, saying what for; `judged`: this tick's checks, for the new status."""
    status = tick.status
    if status.message != message:
        status = records.evolve(
            status, {**judged, "message": message} if judged else {"message": message}
        )
    elif judged:
        status = records.evolve(status, judged)
    return Decision(status, actions, PROPAGATION_POLL if poll else None)
