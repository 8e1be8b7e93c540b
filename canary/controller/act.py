"""Act: carry out a Decision, status first.

The status is written before anything else, so a controller that dies half-way through a tick
resumes from a status that already says where it was going; the engine is level-triggered and
asks again for any weight the live route does not show. A failed side effect (a weight write, a
notification, a webhook) is logged and left to the next tick, never allowed to crash the loop.

Actions are dispatched by an exhaustive `match`: a new kind of action that nobody handles fails
`mypy --strict` (assert_never) instead of falling into another action's branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

import structlog

from canary.api.status import CanaryStatus
from canary.controller import hooks
from canary.controller.sources import Sources
from canary.engine.actions import (
    Action,
    CallWebhook,
    ClearFaults,
    Decision,
    Finalize,
    InjectFault,
    Notify,
    ScaleToZero,
    SetWeights,
)
from canary.errors import CanaryError
from canary.ports import CanaryKey, Notifier, Router, RouteRef, Store, Workloads

log = structlog.get_logger("canary.act")


def act(
    key: CanaryKey,
    before: CanaryStatus,
    decision: Decision,
    *,
    route: RouteRef | None,
    store: Store,
    workloads: Workloads,
    router: Router,
    notifier: Notifier,
    sources: Sources,
    now: datetime,
) -> None:
    if decision.status != before:
        store.write_status(key, decision.status)
    doer = _Doer(key, decision.status, route, workloads, router, notifier, sources, now)
    failed = False
    finalize: Finalize | None = None
    for action in decision.actions:
        if isinstance(action, Finalize):
            finalize = action
            continue
        try:
            doer.do(action)
        except CanaryError as exc:
            failed = True
            log.warning("action.failed", action=type(action).__name__, error=str(exc))
    if finalize is None:
        return
    if failed:
        # The Canary stays until what its deletion asked for went through; the next tick
        # reads again and asks again.
        log.info("canary.finalize_deferred", why="an action of the deletion failed")
        return
    store.remove_finalizer(key)
    log.info("canary.finalized", message=finalize.message)


@dataclass(frozen=True, slots=True)
class _Doer:
    key: CanaryKey
    status: CanaryStatus
    route: RouteRef | None
    workloads: Workloads
    router: Router
    notifier: Notifier
    sources: Sources
    now: datetime

    def do(self, action: Action) -> None:
        match action:
            case SetWeights():
                self._set_weights(action)
            case Notify():
                self.notifier.notify(self.key, action)
            case InjectFault():
                if self.route is not None:
                    self.router.inject(self.route, action)
                    log.info(
                        "fault.injected",
                        experiment=action.experiment,
                        subset=action.subset,
                        fault=action.fault.describe(),
                        expires_at=action.expires_at.isoformat(),
                    )
            case ClearFaults():
                # A failed write is retried by the next tick: the engine compares the faults
                # it reads with the experiment it runs, as it does with weights.
                if self.route is not None:
                    self.router.clear_faults(self.route)
                else:
                    # No route (a spec that does not parse): the faults that name this Canary
                    # as their owner are found without one.
                    self.router.clear_faults_of(self.key)
                log.info("fault.cleared", why=action.why)
            case CallWebhook():
                self._call(action)
            case ScaleToZero():
                self.workloads.scale_to_zero(self.key.namespace, action.target)
                log.info("scaled_down", deployment=action.target)
            case Finalize():
                raise AssertionError("act() does Finalize last, itself")
            case _:
                assert_never(action)

    def _set_weights(self, action: SetWeights) -> None:
        if self.route is None:
            # Only a Canary whose spec parsed has a route, and only such a one sets weights.
            log.error("weights.no_route", weight=action.canary_weight)
            return
        self.router.set_weights(self.route, action)
        log.info(
            "weights.set",
            stable=action.stable_subset,
            canary=action.canary_subset,
            weight=action.canary_weight,
        )

    def _call(self, action: CallWebhook) -> None:
        request = hooks.request(
            self.key,
            action.hook,
            secrets=self.sources.secrets,
            phase=action.phase,
            checksum=self.status.revision,
            event=action.event,
            now=self.now,
        )
        answer = self.sources.webhooks.call(request)
        # A hook that gates nothing: its answer is for the log (Flagger's semantics).
        (log.info if answer.passed else log.warning)(
            "webhook.called",
            webhook=action.hook.name,
            type=str(action.hook.type),
            passed=answer.passed,
            answer=answer.message,
        )
