"""Invariants of whole rollouts, over generated specs and observation streams.

Each property drives `wanted` + `decide` through tests.simulation against a stream from
tests.strategies and checks every tick. A failure prints the shrunk spec and stream, and the
blob to replay it with @reproduce_failure.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from canary.api.metrics import MetricMode
from canary.api.spec import CanarySpec, WebhookType
from canary.api.status import HISTORY_LIMIT, CanaryStatus, CheckResult, Phase, Verdict
from canary.engine import conditions, gates
from canary.engine.actions import SetWeights
from canary.engine.decide import decide
from canary.engine.tick import elapsed
from tests import strategies
from tests.simulation import Simulation, TickRecord
from tests.strategies import Stream
from tests.unit.engine import builders

CONFIRM_ROLLOUT = WebhookType.CONFIRM_ROLLOUT
CONFIRM_TRAFFIC_INCREASE = WebhookType.CONFIRM_TRAFFIC_INCREASE
CONFIRM_PROMOTION = WebhookType.CONFIRM_PROMOTION

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ENDED = frozenset({Phase.SUCCEEDED, Phase.FAILED})

Rollout = tuple[CanarySpec, Stream]


def tick_bound(spec: CanarySpec, stream: Stream) -> int:
    """The most ticks a rollout may take after the last change of its pod template.

    Every non-terminal phase has a deadline: Initializing, Promoting and RollingBack each end
    within progressDeadline (+1 tick to notice), and a step within the time its split takes to
    be applied, its interval and progressDeadline. A data plane that applies a split within
    MAX_LAG ticks settles a step in MAX_LAG + 2 ticks; a route that may be unreadable can hold it
    up to the step's own deadline, progressDeadline.
    """
    tick = stream.tick_seconds
    deadline = spec.progress_deadline_seconds
    settle = (strategies.MAX_LAG + 2) * tick if stream.always_readable else deadline
    step = settle + spec.analysis.interval_seconds + deadline + tick
    seconds = len(spec.analysis.weights) * step + 3 * (deadline + tick)
    return max(stream.builds, default=0) + math.ceil(seconds / tick) + 2


def simulate(spec: CanarySpec, stream: Stream) -> list[TickRecord]:
    return Simulation(spec, stream).run(max_ticks=tick_bound(spec, stream) + 50)


def restarted(record: TickRecord) -> bool:
    """Whether this tick started a rollout over (first tick, a new revision, a fixed spec)."""
    before = record.before
    return (
        before.phase is None
        or before.phase is Phase.INVALID
        or before.revision != record.seen.revision
    )


def judged(record: TickRecord) -> list[CheckResult]:
    return [check for check in record.after.checks if check.at == record.now]


def enforced(spec: CanarySpec) -> list[str]:
    names = [m.name for m in spec.analysis.metrics if m.mode is MetricMode.ENFORCE]
    return names + [h.name for h in spec.analysis.webhooks if h.type is WebhookType.ROLLOUT]


def gates_passed(spec: CanarySpec, record: TickRecord, kind: WebhookType) -> bool:
    hooks = [hook.name for hook in spec.analysis.webhooks if hook.type is kind]
    answers = record.seen.gates
    return all(name in answers and answers[name].passed for name in hooks)


def without_records(status: CanaryStatus) -> CanaryStatus:
    return status.model_copy(update={"checks": (), "history": ()})


@PROPERTY
@given(strategies.rollouts(skip_analysis=None))
def test_weights_stay_within_0_and_100_and_the_route_sums_to_100(rollout: Rollout) -> None:
    """Every written split, the live route and status.canaryWeight stay within 0..100, and the
    route always sends exactly 100% between the spec's two subsets."""
    spec, stream = rollout
    subsets = (spec.stable.subset, spec.canary.subset)
    for record in simulate(spec, stream):
        for action in record.decision.actions:
            if isinstance(action, SetWeights):
                assert (action.stable_subset, action.canary_subset) == subsets
                assert 0 <= action.canary_weight <= 100
                assert 0 <= action.stable_weight <= 100
        assert sorted(record.route) == sorted(subsets)
        assert sum(record.route.values()) == 100
        assert all(0 <= weight <= 100 for weight in record.route.values())
        assert 0 <= record.after.canary_weight <= 100
        assert record.after.step < len(spec.analysis.weights)


def _assert_started(spec: CanarySpec, record: TickRecord) -> None:
    after = record.after
    if after.canary_weight == 0:
        return
    if after.phase is Phase.SUCCEEDED:
        # AlreadyPromoted: the live route already sent everything to the canary.
        assert record.seen.traffic is not None
        assert record.seen.traffic.weights.get(spec.canary.subset) == 100
        return
    assert gates_passed(spec, record, WebhookType.PRE_ROLLOUT)
    if spec.skip_analysis:
        assert (after.phase, after.canary_weight) == (Phase.PROMOTING, 100)
    else:
        assert (after.phase, after.step) == (Phase.PROGRESSING, 0)
        assert after.canary_weight == spec.analysis.weights[0]


def _assert_earned(spec: CanarySpec, record: TickRecord) -> None:
    before, after = record.before, record.after
    assert before.phase is Phase.PROGRESSING
    assert before.step_started_at is not None
    held = (record.now - before.step_started_at).total_seconds()
    assert elapsed(held, spec.analysis.interval_seconds)
    weights = spec.analysis.weights
    if before.step + 1 < len(weights):
        assert (after.phase, after.step) == (Phase.PROGRESSING, before.step + 1)
        assert after.canary_weight == weights[before.step + 1]
    else:
        assert (after.phase, after.canary_weight) == (Phase.PROMOTING, 100)
        assert gates_passed(spec, record, WebhookType.CONFIRM_PROMOTION)
    # Nothing judged at this very tick counted against it...
    assert all(check.verdict is Verdict.PASS for check in judged(record) if check.counted)
    # ...and the latest of every enforced check passed, for the step and revision being left.
    latest = {check.name: check for check in after.checks}
    for name in enforced(spec):
        check = latest[name]
        assert check.verdict is Verdict.PASS
        assert (check.revision, check.step) == (before.revision, before.step)
        assert check.weight == before.canary_weight


@PROPERTY
@given(strategies.rollouts(skip_analysis=None))
def test_weight_steps_up_only_once_every_enforced_check_of_the_step_passed(
    rollout: Rollout,
) -> None:
    """The canary's weight goes up one step only after the step held its interval, with the
    latest check of every enforced metric and rollout webhook a pass for that revision and step
    and no counted check judged at that tick failing or inconclusive; it goes down only to 0,
    by a rollback or by a new revision starting over."""
    spec, stream = rollout
    for record in simulate(spec, stream):
        before, after = record.before, record.after
        if restarted(record) or before.phase is Phase.INITIALIZING:
            _assert_started(spec, record)
        elif after.canary_weight < before.canary_weight:
            assert (after.phase, after.canary_weight) == (Phase.ROLLING_BACK, 0)
        elif after.canary_weight > before.canary_weight:
            _assert_earned(spec, record)


@st.composite
def starved_rollouts(draw: st.DrawFn) -> tuple[CanarySpec, Stream, frozenset[str]]:
    spec = draw(strategies.canary_specs(min_enforced=1))
    names = [m.name for m in spec.analysis.metrics if m.mode is MetricMode.ENFORCE]
    starved = draw(st.frozensets(st.sampled_from(names), min_size=1))
    answers = dict.fromkeys(starved, strategies.NO_VALUE)
    return spec, draw(strategies.streams(spec, answers=answers)), starved


@PROPERTY
@given(starved_rollouts())
def test_no_promotion_without_data(rollout: tuple[CanarySpec, Stream, frozenset[str]]) -> None:
    """A rollout in which any enforced metric (some or all of them) only ever answers no data,
    NaN or an error is never promoted, whatever the other metrics and the webhooks say."""
    spec, stream, _ = rollout
    for record in simulate(spec, stream):
        assert record.after.phase not in {Phase.PROMOTING, Phase.SUCCEEDED}
        assert record.route[spec.canary.subset] < 100 or 100 in spec.analysis.weights


@PROPERTY
@given(strategies.rollouts(skip_analysis=None))
def test_every_rollout_ends_within_the_bound_its_deadlines_set(rollout: Rollout) -> None:
    """Given a data plane that applies each split within MAX_LAG ticks, every rollout ends
    Succeeded or Failed within the ticks its steps, interval and progressDeadline allow.

    A confirm-* gate that keeps saying no waits as long as it takes (a person's approval is not
    bounded by the progress deadline), so only rollouts whose gates all open are bounded."""
    spec, stream = rollout
    confirm = {
        hook.name
        for hook in spec.analysis.webhooks
        if hook.type in (CONFIRM_ROLLOUT, CONFIRM_TRAFFIC_INCREASE, CONFIRM_PROMOTION)
    }
    assume(
        all(
            frame.gates.get(name) is not None and frame.gates[name].passed
            for frame in stream.frames
            for name in confirm
        )
    )
    simulation = Simulation(spec, stream)
    records = simulation.run(max_ticks=tick_bound(spec, stream))
    assert simulation.finished, f"still {simulation.status.phase} after {len(records)} ticks"
    assert simulation.status.phase in ENDED


@st.composite
def observed_rollouts(draw: st.DrawFn) -> tuple[CanarySpec, Stream, Stream]:
    spec = draw(strategies.canary_specs(min_observed=1))
    stream = draw(strategies.streams(spec))
    observed = [m.name for m in spec.analysis.metrics if m.mode is MetricMode.OBSERVE]
    return spec, stream, draw(strategies.failing(spec, stream, observed))


@PROPERTY
@given(observed_rollouts())
def test_observe_mode_metrics_never_change_the_outcome(
    rollout: tuple[CanarySpec, Stream, Stream],
) -> None:
    """Replacing every answer of the observe-mode metrics with a failing one changes only the
    check records: the same phases, weights, counts, writes and notices at the same ticks."""
    spec, stream, failed = rollout
    as_given = simulate(spec, stream)
    with_failures = simulate(spec, failed)
    assert len(as_given) == len(with_failures)
    for one, other in zip(as_given, with_failures, strict=True):
        assert without_records(one.after) == without_records(other.after)
        assert one.decision.actions == other.decision.actions
        assert one.decision.wake_after == other.decision.wake_after


@PROPERTY
@given(strategies.rollouts(skip_analysis=None), st.data())
def test_a_restart_after_any_tick_resumes_exactly(rollout: Rollout, data: st.DataObject) -> None:
    """A controller restarted after any tick, with only its status read back from JSON, makes
    exactly the decisions an uninterrupted controller makes."""
    spec, stream = rollout
    straight = simulate(spec, stream)
    stop = data.draw(st.integers(0, len(straight) - 1), label="restart after tick")
    first = Simulation(spec, stream)
    first.run(max_ticks=stop)
    resumed = first.restarted().run(max_ticks=len(straight) - stop)
    assert [r.decision for r in resumed] == [r.decision for r in straight[stop:]]


@PROPERTY
@given(strategies.rollouts(skip_analysis=None))
def test_failed_checks_only_grow_and_the_threshold_rolls_back_at_once(rollout: Rollout) -> None:
    """Within a revision failedChecks grows by exactly the counted failures judged at each tick,
    and the tick that brings it to the threshold rolls back (RollingBack, weight 0), after which
    only Failed follows."""
    spec, stream = rollout
    threshold = spec.analysis.threshold
    for record in simulate(spec, stream):
        before, after = record.before, record.after
        counted = sum(1 for c in judged(record) if c.counted and c.verdict is Verdict.FAIL)
        earlier = 0 if restarted(record) else before.failed_checks
        assert after.failed_checks == earlier + counted
        if after.failed_checks >= threshold:
            assert after.phase in {Phase.ROLLING_BACK, Phase.FAILED}
            if earlier < threshold:
                assert after.phase is Phase.ROLLING_BACK
                writes = [a for a in record.decision.actions if isinstance(a, SetWeights)]
                assert [write.canary_weight for write in writes] == [0]


@PROPERTY
@given(strategies.rollouts(skip_analysis=None))
def test_a_record_is_tagged_with_the_revision_step_and_weight_it_judged(rollout: Rollout) -> None:
    """Every check judged at a tick records the answer it judged, tagged with the tick's
    revision and with the step and weight that were live when it was judged."""
    spec, stream = rollout
    for record in simulate(spec, stream):
        checks = judged(record)
        if not checks:
            continue
        before, seen = record.before, record.seen
        if before.phase is Phase.PROGRESSING and not restarted(record):
            step, weight = before.step, before.canary_weight
        else:
            # Pre-rollout gates, judged while Initializing, before the first step.
            step, weight = 0, 0
        assert seen.traffic is not None
        assert seen.traffic.applied
        assert seen.traffic.weights[spec.canary.subset] == weight
        for check in checks:
            assert (check.revision, check.step, check.weight) == (seen.revision, step, weight)
            if check.name in seen.measurements:
                answer = seen.measurements[check.name]
                assert (check.kind, check.value) == (answer.kind, answer.value)
                assert (check.samples, check.query) == (answer.samples, answer.query)
            elif check.threshold == gates.ROLLBACK_ASKED:
                # A rollback hook's yes is this rollout's failure.
                assert check.passed is not seen.gates[check.name].passed
            else:
                assert check.passed is seen.gates[check.name].passed
        assert record.after.history[-len(checks) :] == tuple(checks)
        assert len(record.after.history) <= HISTORY_LIMIT


@PROPERTY
@given(strategies.rollouts(skip_analysis=None))
def test_conditions_agree_with_the_phase(rollout: Rollout) -> None:
    """Progressing is True in every phase before the end and False once it ended, and
    RollbackVerified is set exactly while the rollout is Failed."""
    spec, stream = rollout
    for record in simulate(spec, stream):
        after = record.after
        kinds = {condition.type: condition for condition in after.conditions}
        assert kinds[conditions.PROGRESSING].status == ("False" if after.phase in ENDED else "True")
        assert (conditions.ROLLBACK_VERIFIED in kinds) == (after.phase is Phase.FAILED)


def test_a_new_revision_while_the_canary_holds_100_percent_starts_over() -> None:
    """A spec change during a step that sends 100% to the canary starts the rollout over from
    stable, rather than taking the route for an earlier promotion (found by
    test_no_promotion_without_data: stepWeight 100, then a new revision, ended Succeeded)."""
    spec = builders.make_spec(stepWeights=[50, 100])
    status = CanaryStatus()
    for second, split, values in (
        (0, {"v1": 100, "v2": 0}, None),
        (10, {"v1": 50, "v2": 50}, None),
        (40, {"v1": 50, "v2": 50}, builders.GOOD),
    ):
        observation = builders.seen(spec, split, values=values)
        status = decide(spec, status, observation, builders.at(second)).status
    assert (status.phase, status.canary_weight) == (Phase.PROGRESSING, 100)
    changed = builders.make_spec(stepWeights=[50, 100], threshold=3)
    all_canary = {"v1": 0, "v2": 100}
    restart = decide(changed, status, builders.seen(changed, all_canary), builders.at(50))
    assert restart.status.phase is Phase.INITIALIZING
    assert [a.canary_weight for a in restart.actions if isinstance(a, SetWeights)] == [0]
    # A tick that still reads the old split (the write not yet seen) does not promote either.
    later = decide(changed, restart.status, builders.seen(changed, all_canary), builders.at(60))
    assert later.status.phase is Phase.INITIALIZING


def test_a_rollout_that_starts_by_waiting_reports_progressing() -> None:
    """The first tick of a rollout sets Progressing to True (RolloutStarted) even while it waits
    for the route to go back to stable (found by test_conditions_agree_with_the_phase: the
    conditions that _start cleared replaced the one enter() had just set)."""
    spec = builders.make_spec()
    observation = builders.seen(spec, {"v1": 99, "v2": 1})
    decision = decide(spec, CanaryStatus(), observation, builders.at(0))
    assert decision.status.phase is Phase.INITIALIZING
    kinds = {condition.type: condition for condition in decision.status.conditions}
    progressing = kinds[conditions.PROGRESSING]
    assert (progressing.status, progressing.reason) == ("True", "RolloutStarted")
