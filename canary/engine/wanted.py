"""What the next observation must measure: the checks that are due in the current phase.

The controller asks this before it observes, so a tick queries Prometheus and calls webhooks
only when the engine will judge the answers: metrics once a step's weights are live and a check
interval has passed since the last check, gates when their phase waits on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.api.metrics import MetricCheck
from canary.api.spec import CanarySpec, Webhook
from canary.api.status import CanaryStatus, Phase
from canary.engine import chaos, gates, plan
from canary.engine.tick import elapsed


@dataclass(frozen=True, slots=True)
class ChaosWindow:
    """An experiment's fault window, whose callers' view the verdict needs."""

    name: str
    subset: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Wanted:
    metrics: tuple[MetricCheck, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    chaos: tuple[ChaosWindow, ...] = ()


NOTHING = Wanted()


def wanted(spec: CanarySpec, status: CanaryStatus, now: datetime) -> Wanted:
    made = plan.of(spec)
    if made.suspend:
        return NOTHING
    phase = status.phase
    if phase is Phase.INITIALIZING:
        # Flagger's order: the pre-rollout hooks (a migration, a smoke test) run only once the
        # rollout is confirmed.
        hooks = made.confirm_rollout + made.rollback
        if gates.confirmed_before(status, made.confirm_rollout):
            hooks += made.pre_rollout
        return Wanted(webhooks=hooks)
    started = status.step_started_at
    if phase is not Phase.PROGRESSING or started is None:
        return NOTHING
    if status.chaos:
        experiment = chaos.running(status.chaos, status.revision)
        if experiment is not None:
            ended = experiment.ended_at
            if ended is None or now < ended + timedelta(seconds=chaos.SETTLE):
                return NOTHING
            window = ChaosWindow(experiment.name, experiment.subset, experiment.started_at, ended)
            return Wanted(chaos=(window,))
        quiet = chaos.quiet_until(made, status)
        if quiet is not None and now < quiet:
            # The fault's failures are still inside the metric windows: judging them now would
            # fail the canary for what the experiment did to it.
            return NOTHING
    # A check made during the previous step says nothing about this one.
    last = started
    checked = status.last_check_at
    if checked is not None and checked > last:
        last = checked
    due = elapsed((now - last).total_seconds(), made.check_interval)
    metrics = made.metrics if due else ()
    webhooks = made.rollout + made.rollback if due else ()
    if status.promote_requested is None and elapsed((now - started).total_seconds(), made.interval):
        # The step has held: what its end waits on is asked while it waits (canary promote
        # skips these gates, a person having said yes).
        last_step = status.step + 1 >= len(made.weights)
        webhooks += made.confirm_promotion if last_step else made.confirm_traffic_increase
    return Wanted(metrics=metrics, webhooks=webhooks)
