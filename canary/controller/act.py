"""Act: carry out a Decision, status first.

The status is written before anything else, so a controller that dies half-way through a tick
resumes from a status that already says where it was going; the engine is level-triggered and
asks again for any weight the live route does not show. A failed side effect (a weight write, a
notification) is logged and left to the next tick, never allowed to crash the loop.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from canary.api.status import CanaryStatus
from canary.engine.actions import (
    CallWebhook,
    ClearFaults,
    Decision,
    InjectFault,
    Notify,
    SetWeights,
)
from canary.errors import CanaryError
from canary.ports import CanaryKey, Notifier, Router, RouteRef, Store

HookCaller = Callable[[CanaryKey, CallWebhook], None]

log = structlog.get_logger("canary.act")


def act(
    key: CanaryKey,
    before: CanaryStatus,
    decision: Decision,
    *,
    route: RouteRef | None,
    store: Store,
    router: Router,
    notifier: Notifier,
    call_hook: HookCaller,
) -> None:
    if decision.status != before:
        store.write_status(key, decision.status)
    for action in decision.actions:
        if isinstance(action, SetWeights):
            if route is None:
                # Only a Canary whose spec parsed has a route, and only such a one sets weights.
                log.error("weights.no_route", weight=action.canary_weight)
                continue
            try:
                router.set_weights(route, action)
            except CanaryError as exc:
                log.warning("weights.failed", weight=action.canary_weight, error=str(exc))
            else:
                log.info(
                    "weights.set",
                    stable=action.stable_subset,
                    canary=action.canary_subset,
                    weight=action.canary_weight,
                )
        elif isinstance(action, Notify):
            _notify(notifier, key, action)
        elif isinstance(action, InjectFault | ClearFaults):
            if route is not None:
                _fault(router, route, action)
        else:
            try:
                call_hook(key, action)
            except CanaryError as exc:
                log.warning("webhook.failed", webhook=action.hook.name, error=str(exc))


def _fault(router: Router, route: RouteRef, action: InjectFault | ClearFaults) -> None:
    # A failed write is retried by the next tick: the engine compares the faults it reads with
    # the experiment it runs, as it does with weights.
    try:
        if isinstance(action, InjectFault):
            router.inject(route, action)
            log.info(
                "fault.injected",
                experiment=action.experiment,
                subset=action.subset,
                fault=action.fault.describe(),
                expires_at=action.expires_at.isoformat(),
            )
        else:
            router.clear_faults(route)
            log.info("fault.cleared", why=action.why)
    except CanaryError as exc:
        log.warning("fault.failed", action=type(action).__name__, error=str(exc))


def _notify(notifier: Notifier, key: CanaryKey, notice: Notify) -> None:
    (log.warning if notice.warning else log.info)(
        "event", reason=notice.reason, message=notice.message
    )
    try:
        notifier.notify(key, notice)
    except CanaryError as exc:
        log.warning("notify.failed", reason=notice.reason, error=str(exc))
