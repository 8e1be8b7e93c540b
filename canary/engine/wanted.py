"""What the next observation must measure: the checks that are due in the current phase.

The controller asks this before it observes, so a tick queries Prometheus and calls webhooks
only when the engine will judge the answers: metrics once a step's weights are live and a check
interval has passed since the last check, gates when their phase waits on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from canary.api.metrics import MetricCheck
from canary.api.spec import CanarySpec, Webhook, WebhookType
from canary.api.status import CanaryStatus, Phase
from canary.engine.tick import elapsed


@dataclass(frozen=True, slots=True)
class Wanted:
    metrics: tuple[MetricCheck, ...] = ()
    webhooks: tuple[Webhook, ...] = ()


NOTHING = Wanted()


def wanted(spec: CanarySpec, status: CanaryStatus, now: datetime) -> Wanted:
    if spec.suspend:
        return NOTHING
    analysis = spec.analysis
    if status.phase is Phase.INITIALIZING:
        return Wanted(webhooks=_of_type(spec, WebhookType.PRE_ROLLOUT))
    if status.phase is not Phase.PROGRESSING or status.step_started_at is None:
        return NOTHING
    # A check made during the previous step says nothing about this one.
    last = status.step_started_at
    if status.last_check_at is not None and status.last_check_at > last:
        last = status.last_check_at
    due = elapsed((now - last).total_seconds(), analysis.check_interval_seconds)
    metrics = tuple(analysis.metrics) if due else ()
    webhooks = _of_type(spec, WebhookType.ROLLOUT) if due else ()
    last_step = status.step + 1 >= len(analysis.weights)
    held = (now - status.step_started_at).total_seconds()
    if last_step and elapsed(held, analysis.interval_seconds):
        webhooks += _of_type(spec, WebhookType.CONFIRM_PROMOTION)
    return Wanted(metrics=metrics, webhooks=webhooks)


def _of_type(spec: CanarySpec, kind: WebhookType) -> tuple[Webhook, ...]:
    return tuple(hook for hook in spec.analysis.webhooks if hook.type is kind)
