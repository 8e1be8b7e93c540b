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
from canary.engine.actions import CallWebhook, Decision, Notify, SetWeights
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
        else:
            try:
                call_hook(key, action)
            except CanaryError as exc:
                log.warning("webhook.failed", webhook=action.hook.name, error=str(exc))


def _notify(notifier: Notifier, key: CanaryKey, notice: Notify) -> None:
    (log.warning if notice.warning else log.info)(
        "event", reason=notice.reason, message=notice.message
    )
    try:
        notifier.notify(key, notice)
    except CanaryError as exc:
        log.warning("notify.failed", reason=notice.reason, error=str(exc))
