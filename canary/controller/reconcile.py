"""One tick of one Canary: observe, decide, act, with its namespace/name bound to every log line.

Three ways a tick can go wrong are decided here rather than left as they happen:
- a tick that raises leaves the `TickFailed` condition and an Event, and past its phase's
  deadline the rollback any stuck phase gets (engine/failures.py);
- a Canary that is Invalid gets its split sent back to stable through subsets without labels,
  so the revert can add nothing to the DestinationRule (engine/invalid.py);
- a status that cannot be read is marked with the `StatusUnreadable` condition (its other fields
  left as they are) and an Event, and nothing is judged or written until it is fixed or
  `canary retry` starts the rollout over on purpose: an empty status read as a fresh start
  would repeat every step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from canary.api import builtins
from canary.api.commands import Verb
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Condition, Phase
from canary.controller import act, observe
from canary.controller.chat.publisher import ChatPublisher
from canary.controller.preflight import Preflight
from canary.controller.sources import Sources
from canary.engine import conditions, deletion, failures, records
from canary.engine.actions import ClearFaults, Decision, Notify, SetWeights
from canary.engine.decide import decide
from canary.engine.invalid import invalid
from canary.errors import CanaryError, Unavailable
from canary.ports import (
    FINALIZER,
    CanaryKey,
    Clock,
    Notifier,
    Router,
    RouteRef,
    Store,
    StoredCanary,
    SubsetRef,
    Workloads,
)

log = structlog.get_logger("canary.tick")

TickListener = Callable[[CanaryKey, Decision | None, float, str], None]


@dataclass
class Reconciler:
    store: Store
    workloads: Workloads
    router: Router
    notifier: Notifier
    clock: Clock
    sources: Sources
    query_set: builtins.QuerySet = builtins.QuerySet.ISTIO
    # Told of every tick (key, decision or None, seconds, outcome "ok|unavailable|error").
    on_tick: TickListener | None = None
    # Chat notifications, told after each tick's act; None: none configured.
    chat: ChatPublisher | None = None
    # What preflight asks before a rollout's first step; None: no preflight (unit tests).
    preflight: Preflight | None = None
    # The unreadable-status error already marked, per Canary, so it is written once, not per tick.
    _unreadable: dict[CanaryKey, str] = field(default_factory=dict)
    # The last error each failing Canary's tick raised.
    _errors: dict[CanaryKey, str] = field(default_factory=dict)

    def tick(self, key: CanaryKey) -> Decision | None:
        """Run one tick; None when the Canary is gone or the tick could not finish."""
        with structlog.contextvars.bound_contextvars(namespace=key.namespace, name=key.name):
            started = time.monotonic()
            decision: Decision | None = None
            outcome = "ok"
            try:
                decision = self._tick(key)
            except Unavailable as exc:
                log.warning("tick.unavailable", error=str(exc), retry_after=exc.retry_after)
                outcome = "unavailable"
            except Exception as exc:
                # A bug met by one Canary must not stop the others' ticks; the next tick of
                # this one starts over from the stored status. The traceback is logged once
                # per distinct error: a Canary failing every tick must not flood the log.
                described = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
                if self._errors.get(key) != described:
                    log.exception("tick.crashed")
                else:
                    log.warning("tick.crashed_again", error=described)
                self._errors[key] = described
                outcome = "error"
                self._failed(key, described)
            else:
                self._errors.pop(key, None)
            seconds = time.monotonic() - started
            if decision is not None:
                log.debug(
                    "tick.done",
                    phase=decision.status.phase,
                    weight=decision.status.canary_weight,
                    seconds=round(seconds, 4),
                )
            if self.on_tick is not None:
                self.on_tick(key, decision, seconds, outcome)
            return decision

    def _tick(self, key: CanaryKey) -> Decision | None:
        stored = self.store.canary(key)
        if stored is None:
            return None
        if FINALIZER not in stored.finalizers:
            if stored.deleting_since is not None:
                # Dealt with already (or never written for), and held only by someone else's
                # finalizer: nothing is left for a tick to do.
                return None
            # Before anything is written for it, so that its deletion is always dealt with.
            self.store.add_finalizer(key)
        now = self.clock.now()
        if stored.status_error and stored.deleting_since is None and not _retrying(stored):
            self._mark_unreadable(stored, now)
            return None
        if stored.status_error and stored.deleting_since is not None:
            # Deleted with a status that cannot be read: the deletion must not wedge on it. Its
            # faults are still cleared; with no stable subset known, the weights stay.
            stored = dataclasses.replace(stored, status_error="")
        elif stored.status_error:
            # `canary retry` asked to start over: the lost rollout counts as one that failed,
            # which is what retry starts over from.
            lost = CanaryStatus(phase=Phase.FAILED, message="the stored status could not be read")
            stored = dataclasses.replace(stored, status=lost, status_error="")
        self._unreadable.pop(key, None)
        route = None
        if stored.spec is None and stored.deleting_since is not None:
            decision = deletion.unparsed(
                stored.status, stored.problems, now=now, deleting_since=stored.deleting_since
            )
        elif stored.spec is None:
            decision = invalid(stored.status, stored.problems, now=now)
        else:
            route = observe.route_of(key, stored.spec, stored.status.stable_subset, uid=stored.uid)
            seen = observe.observe(
                stored,
                stored.spec,
                now,
                route=route,
                store=self.store,
                workloads=self.workloads,
                router=self.router,
                sources=self.sources,
                query_set=self.query_set,
                chat_problems=() if self.chat is None else self.chat.problems(key),
                preflight_ports=self.preflight,
            )
            decision = decide(stored.spec, stored.status, seen, now)
        if decision.status.phase is Phase.INVALID and route is not None:
            route = _for_revert(route, decision)
        if conditions.is_true(stored.status.conditions, conditions.TICK_FAILED):
            decision = dataclasses.replace(
                decision, status=failures.recovered(decision.status, now)
            )
        self._act(stored, decision, route, now)
        self._publish(stored, decision, now)
        return decision

    def _publish(self, stored: StoredCanary, decision: Decision, now: datetime) -> None:
        if self.chat is not None and stored.spec is not None:
            # Queued only (the outbox sends in the background); publish never raises.
            notices = [a for a in decision.actions if isinstance(a, Notify)]
            self.chat.publish(stored.key, stored.spec, decision.status, notices, now=now)

    def _act(
        self, stored: StoredCanary, decision: Decision, route: RouteRef | None, now: datetime
    ) -> None:
        act.act(
            stored.key,
            stored.status,
            decision,
            route=route,
            store=self.store,
            workloads=self.workloads,
            router=self.router,
            notifier=self.notifier,
            sources=self.sources,
            now=now,
        )

    def _failed(self, key: CanaryKey, described: str) -> None:
        """Leave what a failed tick leaves (engine/failures.py); a failure here is logged."""
        try:
            stored = self.store.canary(key)
            if stored is None or stored.status_error:
                return
            now = self.clock.now()
            decision = failures.tick_failed(
                stored.status, described, now, phase_deadline=_phase_deadline(stored.spec)
            )
            route = None
            if stored.spec is not None:
                route = observe.route_of(key, stored.spec, stored.status.stable_subset)
                route = _for_revert(route, decision)
            else:
                # Without a spec there is no route to write: the condition and event alone.
                kept = tuple(
                    a for a in decision.actions if not isinstance(a, SetWeights | ClearFaults)
                )
                decision = Decision(decision.status, kept)
            self._act(stored, decision, route, now)
            # People hear of a failing tick (and of the rollback it may lead to) too.
            self._publish(stored, decision, now)
        except Exception:
            log.exception("tick.failure_unrecorded")

    def _mark_unreadable(self, stored: StoredCanary, now: datetime) -> None:
        if self._unreadable.get(stored.key) == stored.status_error:
            return
        message = (
            f"the stored status cannot be read ({stored.status_error}): nothing is judged or "
            "written until it is fixed; `canary retry` starts the rollout over from the first step"
        )
        condition = records.built(
            Condition,
            {
                "type": conditions.STATUS_UNREADABLE,
                "status": "True",
                "reason": "StatusUnreadable",
                "message": message,
                "last_transition_time": now,
            },
        )
        log.warning("status.unreadable", error=stored.status_error)
        try:
            self.store.write_conditions(stored.key, (condition,))
        except CanaryError as exc:
            log.warning("status.unreadable_unmarked", error=str(exc))
            return
        self.notifier.notify(stored.key, Notify("StatusUnreadable", message, warning=True))
        self._unreadable[stored.key] = stored.status_error


def _retrying(stored: StoredCanary) -> bool:
    return stored.command is not None and stored.command.verb is Verb.RETRY


def _for_revert(route: RouteRef, decision: Decision) -> RouteRef:
    """The route naming only the subsets the revert writes, without labels, so that writing it
    adds nothing to the DestinationRule: a revert touches the weights and nothing else."""
    weights = next((a for a in decision.actions if isinstance(a, SetWeights)), None)
    if weights is None:
        return route
    named = (SubsetRef(weights.stable_subset), SubsetRef(weights.canary_subset))
    return dataclasses.replace(route, subsets=named)


def _phase_deadline(spec: CanarySpec | None) -> timedelta | None:
    if spec is None:
        return None
    try:
        return timedelta(seconds=spec.progress_deadline_seconds)
    except (OverflowError, ValueError):
        return None
