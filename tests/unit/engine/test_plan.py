"""A spec's plan holds what the spec says, once per spec object."""

from __future__ import annotations

from datetime import timedelta

from canary.api.spec import CanarySpec, WebhookType
from canary.engine import plan
from canary.engine.tick import elapsed


def test_a_plan_reads_the_spec_it_was_made_from(spec: CanarySpec) -> None:
    made = plan.of(spec)
    analysis = spec.analysis
    assert made.weights == analysis.weights
    assert made.interval == analysis.interval_seconds
    assert made.check_interval == analysis.check_interval_seconds
    assert made.progress_deadline == spec.progress_deadline_seconds
    assert made.threshold == analysis.threshold
    assert (made.stable_subset, made.canary_subset) == (spec.stable.subset, spec.canary.subset)
    assert [rule.name for rule in made.rules] == [m.name for m in analysis.metrics]
    assert made.rollout == tuple(h for h in analysis.webhooks if h.type is WebhookType.ROLLOUT)


def test_a_plan_is_made_once_per_spec_object_and_never_shared(spec: CanarySpec) -> None:
    assert plan.of(spec) is plan.of(spec)
    changed = spec.model_copy(update={"suspend": not spec.suspend})
    assert plan.of(changed).suspend is not plan.of(spec).suspend


def test_a_plan_holds_its_deadlines(spec: CanarySpec) -> None:
    made = plan.of(spec)
    seconds = timedelta(seconds=1)
    assert made.phase_deadline / seconds == spec.progress_deadline_seconds
    interval = spec.analysis.interval_seconds
    assert made.step_deadline / seconds == interval + spec.progress_deadline_seconds


def test_a_wait_counts_as_elapsed_a_hair_early() -> None:
    assert plan.held_after(30.0) == 29.5
    assert plan.held_after(10.0) == 9.8
    assert plan.held_after(1.0) == 0.98
    assert elapsed(29.5, 30.0)
    assert not elapsed(29.499, 30.0)
