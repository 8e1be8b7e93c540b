"""What the engine reads from a spec, worked out once per spec object.

The phases, `wanted` and the judge need the spec in their own terms: the step weights, durations
in seconds, the webhooks by kind, each metric as a judging rule, the names a step must pass. They
are worked out here once and kept on a dataclass that travels with the tick, rather than again on
every tick of every Canary. A spec is frozen, so its plan never goes stale; a changed spec is a
new object with a plan of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from canary.api import durations
from canary.api.chaos import Experiment
from canary.api.metrics import MetricCheck
from canary.api.spec import CanarySpec, Webhook, WebhookType
from canary.engine import judge


@dataclass(frozen=True, slots=True)
class Plan:
    weights: tuple[int, ...]
    # Seconds: how long a step holds, how often its checks run, how long a phase may wait.
    interval: float
    check_interval: float
    progress_deadline: float
    # How far ahead a phase's deadline falls when it is entered, and a step's once its weights
    # are live (its interval, then the progress deadline).
    phase_deadline: timedelta
    step_deadline: timedelta
    threshold: int
    stable_subset: str
    canary_subset: str
    suspend: bool
    pause_on_drift: bool
    skip_analysis: bool
    # analysis.advanceEarly: a step whose comparisons have all shown equivalence may end early.
    advance_early: bool
    metrics: tuple[MetricCheck, ...]
    rules: tuple[judge.Rule, ...]
    # The webhooks by type (Flagger's eight; see api/spec.py WebhookType).
    confirm_rollout: tuple[Webhook, ...]
    pre_rollout: tuple[Webhook, ...]
    rollout: tuple[Webhook, ...]
    confirm_traffic_increase: tuple[Webhook, ...]
    confirm_promotion: tuple[Webhook, ...]
    post_rollout: tuple[Webhook, ...]
    rollback: tuple[Webhook, ...]
    event: tuple[Webhook, ...]
    # The names whose latest result must be a pass for a step to pass.
    required: tuple[str, ...]
    chaos: tuple[Experiment, ...]
    # Seconds: the longest metric query window; a fault keeps a step's checks off this long.
    longest_window: float
    # Seconds a promotion holds before the retired Deployment is scaled to zero; None: never.
    scale_down_after: float | None


def held_after(period: float) -> float:
    """How long a wait of `period` seconds must have run to count as elapsed.

    A scheduler fires a hair early as often as late; a step of 30s that is checked after 29.98s
    has held for its interval as far as anyone can tell.
    """
    return period - min(0.5, period * 0.02)


# Keyed by id(spec), holding the spec itself so the id cannot be reused while the entry lives.
_plans: dict[int, tuple[CanarySpec, Plan]] = {}
_CACHE_LIMIT = 4096


def of(spec: CanarySpec) -> Plan:
    cached = _plans.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    made = _made(spec)
    if len(_plans) >= _CACHE_LIMIT:
        _plans.clear()
    _plans[id(spec)] = (spec, made)
    return made


def _made(spec: CanarySpec) -> Plan:
    analysis = spec.analysis
    rules = tuple(judge.Rule.of(metric) for metric in analysis.metrics)

    def hooks(kind: WebhookType) -> tuple[Webhook, ...]:
        return tuple(hook for hook in analysis.webhooks if hook.type is kind)

    rollout = hooks(WebhookType.ROLLOUT)
    return Plan(
        weights=analysis.weights,
        interval=analysis.interval_seconds,
        check_interval=analysis.check_interval_seconds,
        progress_deadline=spec.progress_deadline_seconds,
        phase_deadline=timedelta(seconds=spec.progress_deadline_seconds),
        step_deadline=timedelta(seconds=analysis.interval_seconds + spec.progress_deadline_seconds),
        threshold=analysis.threshold,
        stable_subset=spec.stable.subset,
        canary_subset=spec.canary.subset,
        suspend=spec.suspend,
        pause_on_drift=spec.on_drift == "pause",
        skip_analysis=spec.skip_analysis,
        advance_early=analysis.advance_early,
        metrics=tuple(analysis.metrics),
        rules=rules,
        confirm_rollout=hooks(WebhookType.CONFIRM_ROLLOUT),
        pre_rollout=hooks(WebhookType.PRE_ROLLOUT),
        rollout=rollout,
        confirm_traffic_increase=hooks(WebhookType.CONFIRM_TRAFFIC_INCREASE),
        confirm_promotion=hooks(WebhookType.CONFIRM_PROMOTION),
        post_rollout=hooks(WebhookType.POST_ROLLOUT),
        rollback=hooks(WebhookType.ROLLBACK),
        event=hooks(WebhookType.EVENT),
        required=tuple(rule.name for rule in rules if rule.enforced)
        + tuple(hook.name for hook in rollout),
        chaos=tuple(spec.chaos),
        longest_window=max(
            (durations.seconds(metric.interval) for metric in analysis.metrics), default=0.0
        ),
        scale_down_after=spec.scale_down_after_seconds,
    )
