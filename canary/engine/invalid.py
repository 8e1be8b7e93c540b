"""A Canary that cannot be acted on is Invalid, and the split it leaves is decided, not left.

Problems found while observing (a template deleted, a subset renamed) or a spec that does not
parse make the Canary Invalid until they are fixed. Nothing judges its canary meanwhile, so a
split that had moved goes back to 100% on the stable subset whenever the route can still be
written: read back this tick, with the stable subset known and served by it. That is level-
triggered like every weight: a revert that failed to write, or a split someone moved again, is
sent back on the next tick. Nothing else is written: no step, no subset added to the
DestinationRule (the controller writes through subsets without labels here, see reconcile.py),
and any fault in place is cleared, since no experiment runs while the Canary is Invalid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

from canary.api.status import CanaryStatus, Phase
from canary.engine import conditions, records
from canary.engine.actions import Action, ClearFaults, Decision, Notify, SetWeights
from canary.engine.observation import Observation


def invalid(
    status: CanaryStatus,
    problems: tuple[str, ...],
    *,
    now: datetime,
    revision: str = "",
    seen: Observation | None = None,
) -> Decision:
    """Invalid, with the split sent back to stable when it had moved; `seen` is None when the
    spec did not parse, so neither the route nor the faults are known."""
    message = "; ".join(problems)
    restore, condition = _restore(status, seen)
    clear = seen is not None and (seen.faults is None or seen.faults != ())
    updated = status.conditions
    if condition is not None:
        updated = conditions.with_condition(
            updated,
            type=conditions.STABLE_RESTORED,
            status=condition.state,
            reason=condition.reason,
            message=condition.message,
            now=now,
        )
    unchanged = status.phase is Phase.INVALID and status.message == message
    if unchanged and restore is None and not clear and updated is status.conditions:
        return Decision(status=status)
    actions: list[Action] = []
    if not unchanged:
        actions.append(Notify("InvalidSpec", message, warning=True))
    if condition is not None and updated is not status.conditions:
        actions.append(Notify("StableRestored", condition.message, warning=True))
    if clear:
        # Faults first, as in any rollback: the canary must not keep failing on purpose.
        actions.append(ClearFaults("the Canary is invalid"))
    if restore is not None:
        actions.append(restore)
    updated = conditions.with_condition(
        updated,
        type=conditions.INVALID_SPEC,
        status="True",
        reason="InvalidSpec",
        message=message,
        now=now,
    )
    updated = conditions.with_condition(
        updated,
        type=conditions.PROMOTED,
        status="False",
        reason="InvalidSpec",
        message=message,
        now=now,
    )
    values: dict[str, object] = {
        "phase": Phase.INVALID,
        "message": message,
        "revision": revision or status.revision,
        "deadline_at": None,
        "deadline_action": None,
        "conditions": updated,
    }
    if not unchanged:
        values["last_transition_time"] = now
    if restore is not None:
        values["canary_weight"] = 0
    return Decision(status=records.evolve(status, values), actions=tuple(actions))


class _Said(NamedTuple):
    state: Literal["True", "False"]
    reason: str
    message: str


def _restore(
    status: CanaryStatus, seen: Observation | None
) -> tuple[SetWeights | None, _Said | None]:
    """The write that sends 100% back to stable, if one is due, and the condition that says so."""
    stable = status.stable_subset
    if not stable:
        # No rollout ever started here: whatever the route sends, this controller did not move.
        return None, None
    traffic = None if seen is None else seen.traffic
    if traffic is None:
        if status.canary_weight == 0:
            return None, None
        why = "its spec does not parse" if seen is None else "its route could not be read"
        left = f"{status.canary_weight}% may still go to {status.canary_subset or 'the canary'}"
        return None, _Said("False", "RouteUnknown", f"{left}, unjudged: {why}")
    moved = sorted(
        subset for subset, weight in traffic.weights.items() if subset != stable and weight
    )
    if not moved:
        return None, None
    shares = ", ".join(f"{traffic.weights[subset]}% on {subset}" for subset in moved)
    if stable not in traffic.weights:
        why = f"the route no longer serves the stable subset {stable}"
        return None, _Said("False", "NoStableSubset", f"{shares} stays, unjudged: {why}")
    canary = status.canary_subset if status.canary_subset in moved else moved[0]
    message = f"invalid with {shares}: 100% sent back to {stable} until the Canary is fixed"
    return SetWeights(stable, canary, 0), _Said("True", "InvalidSpec", message)
