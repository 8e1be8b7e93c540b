"""A deleted Canary: clear its faults, put its route where `onDelete` says, then let it go.

The controller puts a finalizer on every Canary before it writes anything for it, so deleting a
Canary only sets its deletionTimestamp, and the Canary stays until the controller has dealt with
what it left: the route's split and the faults of its experiments. That holds however the
deletion came about, with the controller running, down, or between leaders.

Each tick of a deleting Canary is decided here and nowhere else (no step, check, command or
gate runs), level-triggered like the rest: every fault the observation shows is cleared; with
`onDelete: revert` (the default) a rollout that had not succeeded goes back to 100% on the
stable subset that serves (`status.stableSubset`), with `keep` the weights stay as they are;
and once the observation shows all of it done (the split served by the data plane, no fault
left), `Finalize` lets the Canary go. A running experiment is recorded as interrupted.

Deletion never wedges. A route that cannot be read (its VirtualService is gone) is left as it
is, with a warning that says so; whatever is still not done when the Canary's progress deadline
has passed since the deletion is given up on, with a warning, and the Canary goes (a fault left
then still carries its expiry, which the controller's periodic sweep honours, and an owner
reference, which a cluster's garbage collector honours). A Canary whose spec does not parse has
no route to revert: its own faults are cleared by owner and it goes (`unparsed`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from canary.api.status import CanaryStatus, Phase
from canary.engine import chaos, conditions, records
from canary.engine.actions import Action, ClearFaults, Decision, Finalize, Notify, SetWeights
from canary.engine.tick import PROPAGATION_POLL, Tick, split_matches

DELETING = "Deleting"
WHY = "the Canary is being deleted"
# For a Canary whose spec does not parse, which has no progress deadline of its own: the
# default one.
UNPARSED_DEADLINE = timedelta(minutes=10)


def decided(tick: Tick) -> Decision:
    """The decision for a tick of a Canary whose deletion is under way."""
    status, seen, now = tick.status, tick.seen, tick.now
    since = seen.deleting_since or now
    keep = tick.spec.on_delete == "keep"
    updates: dict[str, Any] = dict(chaos.interrupted(tick, WHY))
    actions: list[Action] = []
    waiting: list[str] = []
    if seen.faults != ():
        actions.append(ClearFaults(WHY))
        waiting.append("its faults to be cleared" if seen.faults else "its faults to be read")
    write, wait, outcome, warning = _route(tick, keep=keep)
    if write is not None:
        actions.append(write)
    if wait is not None:
        waiting.append(wait)
    how = "keep" if keep else "revert"
    notices: list[Action] = []
    if not conditions.is_true(status.conditions, DELETING):
        notices.append(Notify("Deleting", f"deleted (onDelete: {how}): {_plan(tick, keep=keep)}"))
    late = now >= since + tick.plan.phase_deadline
    if waiting and not late:
        message = f"deleting (onDelete: {how}): waiting for {' and '.join(waiting)}"
        return Decision(
            _evolved(status, updates, message, reason=how, now=now),
            (*notices, *actions),
            PROPAGATION_POLL,
        )
    if waiting:
        # Given up on: nothing more is written for a Canary that is about to go.
        seconds = tick.plan.phase_deadline.total_seconds()
        gave_up = (
            f"still waiting for {' and '.join(waiting)} {seconds:g}s (the progress deadline) "
            "after the deletion: left as it is"
        )
        outcome = f"{gave_up}; {outcome}" if outcome else gave_up
        warning = True
    message = f"deleted (onDelete: {how}): {outcome}"
    return Decision(
        _evolved(status, updates, message, reason=how, now=now),
        (*notices, Notify("Deleted", message, warning=warning), Finalize(message)),
    )


def unparsed(
    status: CanaryStatus,
    problems: tuple[str, ...],
    *,
    now: datetime,
    deleting_since: datetime,
) -> Decision:
    """A deleted Canary whose spec does not parse: its faults are cleared by owner (the router
    finds them without a route), its weights cannot be found, and it goes."""
    message = (
        f"deleted with a spec that does not parse ({'; '.join(problems)}): its route cannot be "
        "found, so its weights are left as they are; the faults it owns are cleared"
    )
    actions: list[Action] = [ClearFaults(WHY)]
    if now < deleting_since + UNPARSED_DEADLINE:
        # Finalize is done only once the clearing went through (act's rule).
        actions += [Notify("Deleted", message, warning=True), Finalize(message)]
    else:
        gave_up = f"{message}, or given up on after {UNPARSED_DEADLINE.total_seconds():g}s"
        actions = [Notify("Deleted", gave_up, warning=True), Finalize(gave_up)]
    return Decision(_evolved(status, {}, message, reason="unparsed", now=now), tuple(actions))


def _route(tick: Tick, *, keep: bool) -> tuple[SetWeights | None, str | None, str, bool]:
    """What the route needs: a write, what is still awaited, the outcome told, and whether
    that outcome is a warning."""
    status, seen = tick.status, tick.seen
    stable, canary = status.stable_subset, status.canary_subset
    if keep:
        return None, None, "the route's weights are kept as they are", False
    if status.phase is Phase.SUCCEEDED:
        return None, None, f"the rollout had succeeded; {stable} serves", False
    if status.phase is None or not stable or not canary or stable == canary:
        return None, None, "no rollout had moved traffic", False
    if seen.traffic is None:
        problems = "; ".join(seen.problems) or "unknown"
        why = f"the route cannot be read ({problems}), so its weights are left as they are"
        return None, None, why, True
    if not split_matches(seen, stable=stable, canary=canary, canary_weight=0):
        return SetWeights(stable, canary, 0), f"the route to send 100% to {stable}", "", False
    if not seen.traffic.applied:
        return None, f"the data plane to serve 100% on {stable}", "", False
    return None, None, f"100% of the traffic is back on {stable}", False


def _plan(tick: Tick, *, keep: bool) -> str:
    status = tick.status
    if keep or not status.stable_subset or status.phase in (None, Phase.SUCCEEDED):
        return "clearing its faults; the route's weights stay as they are"
    return f"clearing its faults and sending 100% back to {status.stable_subset}"


def _evolved(
    status: CanaryStatus, updates: dict[str, Any], message: str, *, reason: str, now: datetime
) -> CanaryStatus:
    marked = conditions.with_condition(
        status.conditions,
        type=DELETING,
        status="True",
        reason={"revert": "Reverting", "keep": "KeepingWeights"}.get(reason, "SpecUnparsed"),
        message=message,
        now=now,
    )
    changes = {**updates, "message": message, "deadline_at": None, "deadline_action": None}
    if marked is not status.conditions:
        changes["conditions"] = marked
    if all(getattr(status, name) == value for name, value in changes.items()):
        return status
    return records.evolve(status, changes)
