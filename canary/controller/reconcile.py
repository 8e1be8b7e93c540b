"""One tick of one Canary: observe, decide, act, with its namespace/name bound to every log line."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from canary.api import builtins
from canary.controller import act, observe
from canary.controller.sources import Sources
from canary.engine.actions import Decision
from canary.engine.decide import decide, invalid
from canary.errors import Unavailable
from canary.ports import CanaryKey, Clock, Notifier, Router, Store, Workloads

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
            except Exception:
                # A bug met by one Canary must not stop the others' ticks; the next tick of
                # this one starts over from the stored status.
                log.exception("tick.crashed")
                outcome = "error"
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
        now = self.clock.now()
        route = None
        if stored.spec is None:
            decision = invalid(stored.status, stored.problems, now=now)
        else:
            route = observe.route_of(key, stored.spec, stored.status.stable_subset)
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
            )
            decision = decide(stored.spec, stored.status, seen, now)
        act.act(
            key,
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
        return decision
