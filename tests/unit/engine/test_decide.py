"""Rules of the state machine, one tick at a time: given a status and what was seen, what next."""

from __future__ import annotations

from canary.api.spec import CanarySpec
from canary.api.status import HISTORY_LIMIT, CanaryStatus, Phase
from canary.engine import conditions
from canary.engine.actions import Decision, Notify, SetWeights
from canary.engine.decide import decide
from canary.engine.observation import GateResult, Measurement

from .builders import BAD, GOOD, at, make_spec, seen

STABLE_ONLY = {"v1": 100, "v2": 0}


def weights_set(decision: Decision) -> list[int]:
    return [a.canary_weight for a in decision.actions if isinstance(a, SetWeights)]


def reasons(decision: Decision) -> list[str]:
    return [a.reason for a in decision.actions if isinstance(a, Notify)]


def progressing(spec: CanarySpec, *, step: int = 0, started: float | None = 0.0) -> CanaryStatus:
    """The status of a rollout at `step`, whose weights went live at `started` seconds."""
    first = decide(spec, CanaryStatus(), seen(spec, STABLE_ONLY), at(0)).status
    weight = spec.analysis.weights[step]
    return first.model_copy(
        update={
            "step": step,
            "canary_weight": weight,
            "step_started_at": None if started is None else at(started),
        }
    )


def live(spec: CanarySpec, status: CanaryStatus) -> dict[str, int]:
    return {"v1": 100 - status.canary_weight, "v2": status.canary_weight}


def test_first_tick_records_subsets_and_starts_the_first_step(spec: CanarySpec) -> None:
    """A new Canary whose route serves stable only goes straight to its first step."""
    decision = decide(spec, CanaryStatus(), seen(spec, STABLE_ONLY), at(0))
    assert decision.status.phase is Phase.PROGRESSING
    assert (decision.status.stable_subset, decision.status.canary_subset) == ("v1", "v2")
    assert weights_set(decision) == [10]
    assert reasons(decision) == ["RolloutStarted", "StepStarted"]
    assert decision.status.deadline_at == at(120)


def test_canary_that_already_holds_all_traffic_is_not_rolled_out(spec: CanarySpec) -> None:
    """A rollout starts only when the canary subset does not already hold 100%."""
    decision = decide(spec, CanaryStatus(), seen(spec, {"v1": 0, "v2": 100}), at(0))
    assert decision.status.phase is Phase.SUCCEEDED
    assert decision.status.stable_subset == "v2"
    assert weights_set(decision) == []


def test_a_route_left_at_90_10_goes_back_to_stable_before_the_first_step(
    spec: CanarySpec,
) -> None:
    """The rollout begins from 100/0, so its first step is the first traffic v2 gets."""
    decision = decide(spec, CanaryStatus(), seen(spec, {"v1": 90, "v2": 10}), at(0))
    assert decision.status.phase is Phase.INITIALIZING
    assert weights_set(decision) == [0]
    assert decision.wake_after is not None


def test_an_unready_target_holds_the_first_step() -> None:
    """A targetRef Deployment that is not ready keeps the canary at 0%."""
    spec = CanarySpec.model_validate(
        make_spec().model_dump(by_alias=True)
        | {"canary": {"subset": "v2", "targetRef": {"name": "accounts-v2"}}}
    )
    decision = decide(spec, CanaryStatus(), seen(spec, STABLE_ONLY, ready=False), at(0))
    assert decision.status.phase is Phase.INITIALIZING
    assert "accounts-v2" in decision.status.message
    assert weights_set(decision) == []
    ready = decide(spec, decision.status, seen(spec, STABLE_ONLY, ready=True), at(5))
    assert weights_set(ready) == [10]


def test_step_clock_starts_when_the_data_plane_applied_the_weights(spec: CanarySpec) -> None:
    """Written-but-not-applied weights do not start the step; applied ones do, at that tick."""
    status = progressing(spec, started=None)
    pending = decide(spec, status, seen(spec, {"v1": 90, "v2": 10}, applied=False), at(3))
    assert pending.status.step_started_at is None
    assert pending.wake_after is not None
    applied = decide(spec, pending.status, seen(spec, {"v1": 90, "v2": 10}), at(4))
    assert applied.status.step_started_at == at(4)
    assert applied.status.deadline_at == at(4 + 30 + 120)


def test_weights_not_yet_written_are_asked_for_again(spec: CanarySpec) -> None:
    """Level-triggered: while the live split differs, every tick asks for the step's weights."""
    status = progressing(spec, started=None)
    decision = decide(spec, status, seen(spec, STABLE_ONLY), at(3))
    assert weights_set(decision) == [10]


def test_a_passing_step_holds_for_its_whole_interval(spec: CanarySpec) -> None:
    """Checks that pass early do not shorten the step."""
    status = progressing(spec)
    early = decide(spec, status, seen(spec, live(spec, status), values=GOOD), at(10))
    assert early.status.step == 0
    assert weights_set(early) == []
    done = decide(spec, early.status, seen(spec, live(spec, status), values=GOOD), at(30))
    assert done.status.step == 1
    assert weights_set(done) == [50]
    assert done.status.step_started_at is None


def test_a_step_never_advances_on_a_failed_check(spec: CanarySpec) -> None:
    """A failed check at the end of the interval counts and holds the step."""
    status = progressing(spec)
    decision = decide(spec, status, seen(spec, live(spec, status), values=BAD), at(30))
    assert decision.status.step == 0
    assert decision.status.failed_checks == 1
    assert "MetricFailed" in reasons(decision)
    assert weights_set(decision) == []


def test_threshold_reached_rolls_back_at_once_mid_step(spec: CanarySpec) -> None:
    """failedChecks reaching the threshold rolls back without waiting for the step to end."""
    status = progressing(spec).model_copy(update={"failed_checks": 1})
    decision = decide(spec, status, seen(spec, live(spec, status), values=BAD), at(5))
    assert decision.status.phase is Phase.ROLLING_BACK
    assert decision.status.canary_weight == 0
    assert weights_set(decision) == [0]
    assert reasons(decision) == ["MetricFailed", "RollingBack"]
    verified = decide(spec, decision.status, seen(spec, STABLE_ONLY), at(6))
    assert verified.status.phase is Phase.FAILED
    assert conditions.is_true(verified.status.conditions, conditions.ROLLBACK_VERIFIED)


def test_inconclusive_data_holds_the_step_without_counting() -> None:
    """onNoData: wait keeps the step waiting for data, and no failure is counted meanwhile."""
    spec = make_spec(
        metrics=[
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "onNoData": "wait"}
        ]
    )
    status = progressing(spec)
    nothing = {"request-success-rate": Measurement.no_data()}
    decision = decide(spec, status, seen(spec, live(spec, status), values=nothing), at(29))
    assert decision.status.failed_checks == 0
    assert decision.status.checks[0].passed is None
    held = decide(spec, decision.status, seen(spec, live(spec, status)), at(31))
    assert held.status.step == 0
    assert "waiting for every check" in held.status.message


def test_observe_mode_metrics_are_reported_but_never_counted() -> None:
    """A dry-run metric that fails is in the history, yet the step passes and nothing counts."""
    spec = make_spec(
        metrics=[
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            {"name": "request-duration", "thresholdRange": {"max": 100}, "mode": "observe"},
        ]
    )
    status = progressing(spec)
    values = {**GOOD, "request-duration": Measurement.of(900.0)}
    decision = decide(spec, status, seen(spec, live(spec, status), values=values), at(30))
    assert decision.status.failed_checks == 0
    assert decision.status.step == 1
    observed = [c for c in decision.status.history if c.name == "request-duration"]
    assert observed[-1].passed is False
    assert observed[-1].counted is False


def test_passes_of_another_revision_do_not_count(spec: CanarySpec) -> None:
    """A pass recorded for a different revision cannot advance this revision's step."""
    status = progressing(spec)
    passed = decide(spec, status, seen(spec, live(spec, status), values=GOOD), at(10)).status
    forged = passed.model_copy(
        update={"checks": tuple(c.model_copy(update={"revision": "other"}) for c in passed.checks)}
    )
    decision = decide(spec, forged, seen(spec, live(spec, status)), at(30))
    assert decision.status.step == 0


def test_every_record_names_its_revision_step_weight_and_query(spec: CanarySpec) -> None:
    """The history answers "why?" from the object alone."""
    status = progressing(spec)
    values = {"request-success-rate": Measurement.of(80.0, query="sum(rate(x[1m]))", samples=7)}
    record = decide(spec, status, seen(spec, live(spec, status), values=values), at(30))
    entry = record.status.history[-1]
    assert (entry.revision, entry.step, entry.weight) == (status.revision, 0, 10)
    assert (entry.query, entry.value, entry.samples, entry.threshold) == (
        "sum(rate(x[1m]))",
        80.0,
        7,
        ">= 99",
    )
    assert entry.message == "80 is outside >= 99"


def test_history_is_bounded(spec: CanarySpec) -> None:
    """However long a rollout runs, the status keeps the last HISTORY_LIMIT records."""
    status = progressing(spec).model_copy(update={"failed_checks": 0})
    lenient = make_spec(threshold=10_000, interval="1h", checkInterval="1s")
    status = status.model_copy(update={"revision": seen(lenient, None).revision})
    for second in range(HISTORY_LIMIT + 20):
        status = decide(
            lenient, status, seen(lenient, live(lenient, status), values=BAD), at(second)
        ).status
    assert len(status.history) == HISTORY_LIMIT
    assert status.history[-1].at == at(HISTORY_LIMIT + 19)


def test_last_step_promotes_then_succeeds_once_applied(spec: CanarySpec) -> None:
    """Promotion sends 100% to the canary; once applied the canary becomes stable."""
    status = progressing(spec, step=1)
    promoting = decide(spec, status, seen(spec, live(spec, status), values=GOOD), at(30))
    assert promoting.status.phase is Phase.PROMOTING
    assert weights_set(promoting) == [100]
    done = decide(spec, promoting.status, seen(spec, {"v1": 0, "v2": 100}), at(31))
    assert done.status.phase is Phase.SUCCEEDED
    assert done.status.stable_subset == "v2"
    assert done.status.deadline_at is None


def test_confirm_promotion_webhook_gates_promotion() -> None:
    """The last step waits for its confirm-promotion webhook before promoting."""
    spec = make_spec(
        webhooks=[{"name": "ok", "type": "confirm-promotion", "url": "http://gate.local/"}]
    )
    status = progressing(spec, step=1)
    waiting = decide(spec, status, seen(spec, live(spec, status), values=GOOD), at(30))
    assert waiting.status.phase is Phase.PROGRESSING
    assert "confirm-promotion" in waiting.status.message
    yes = {"ok": GateResult(passed=True)}
    confirmed = decide(spec, waiting.status, seen(spec, live(spec, status), gates=yes), at(40))
    assert confirmed.status.phase is Phase.PROMOTING


def test_pre_rollout_webhook_failures_count_toward_the_threshold() -> None:
    """A pre-rollout gate that keeps refusing rolls the Canary back before any traffic moves."""
    spec = make_spec(webhooks=[{"name": "db", "type": "pre-rollout", "url": "http://db.local/"}])
    no = {"db": GateResult(passed=False, message="migration pending")}
    first = decide(spec, CanaryStatus(), seen(spec, STABLE_ONLY, gates=no), at(0))
    assert first.status.phase is Phase.INITIALIZING
    assert first.status.failed_checks == 1
    assert weights_set(first) == []
    second = decide(spec, first.status, seen(spec, STABLE_ONLY, gates=no), at(10))
    assert second.status.phase is Phase.ROLLING_BACK


def test_skip_analysis_promotes_without_steps() -> None:
    """skipAnalysis goes from Initializing straight to Promoting."""
    spec = CanarySpec.model_validate(make_spec().model_dump(by_alias=True) | {"skipAnalysis": True})
    decision = decide(spec, CanaryStatus(), seen(spec, STABLE_ONLY), at(0))
    assert decision.status.phase is Phase.PROMOTING
    assert weights_set(decision) == [100]


def test_a_changed_spec_restarts_from_the_first_step(spec: CanarySpec) -> None:
    """A new revision mid-rollout sends traffic back to stable and starts over."""
    status = progressing(spec, step=1).model_copy(update={"failed_checks": 1})
    changed = make_spec(interval="45s")
    decision = decide(changed, status, seen(changed, live(spec, status)), at(10))
    assert decision.status.phase is Phase.INITIALIZING
    assert decision.status.failed_checks == 0
    assert decision.status.revision != status.revision
    assert weights_set(decision) == [0]
    assert reasons(decision)[0] == "RolloutRestarted"


def test_suspend_freezes_and_resume_does_not_count_frozen_time(spec: CanarySpec) -> None:
    """While suspended nothing is set or counted; after resuming the step still needs its time."""
    status = progressing(spec)
    suspended_spec = CanarySpec.model_validate(spec.model_dump(by_alias=True) | {"suspend": True})
    frozen = decide(suspended_spec, status, seen(suspended_spec, {"v1": 0, "v2": 100}), at(10))
    assert frozen.actions == (Notify("Suspended", "the rollout is suspended"),)
    assert conditions.is_true(frozen.status.conditions, conditions.SUSPENDED)
    again = decide(suspended_spec, frozen.status, seen(suspended_spec, live(spec, status)), at(500))
    assert again.actions == ()
    resumed = decide(spec, again.status, seen(spec, live(spec, status), values=GOOD), at(510))
    assert resumed.status.step_started_at == at(500)
    assert resumed.status.step == 0
    assert not conditions.is_true(resumed.status.conditions, conditions.SUSPENDED)


def test_progress_deadline_rolls_back_a_step_whose_weights_never_apply(
    spec: CanarySpec,
) -> None:
    """A split that never reaches the data plane ends in a rollback when the deadline passes."""
    status = progressing(spec, started=None)
    stuck = seen(spec, {"v1": 90, "v2": 10}, applied=False)
    before = decide(spec, status, stuck, at(119))
    assert before.status.phase is Phase.PROGRESSING
    after = decide(spec, before.status, stuck, at(120))
    assert after.status.phase is Phase.ROLLING_BACK
    assert "deadline" in after.status.message


def test_a_rollback_that_never_applies_fails_unverified(spec: CanarySpec) -> None:
    """A rollback stuck past its deadline ends Failed with RollbackVerified False, not silence."""
    status = progressing(spec).model_copy(update={"failed_checks": 1})
    rolling = decide(spec, status, seen(spec, live(spec, status), values=BAD), at(5)).status
    assert rolling.deadline_action == "fail"
    stuck = seen(spec, live(spec, status))
    ended = decide(spec, rolling, stuck, at(5 + 120))
    assert ended.status.phase is Phase.FAILED
    verified = [c for c in ended.status.conditions if c.type == conditions.ROLLBACK_VERIFIED]
    assert verified[0].status == "False"


def test_every_non_terminal_phase_has_a_deadline_and_an_action(spec: CanarySpec) -> None:
    """Initializing, Progressing, Promoting and RollingBack all store deadlineAt and its action."""
    init = decide(spec, CanaryStatus(), seen(spec, {"v1": 90, "v2": 10}), at(0)).status
    prog = progressing(spec)
    promo = decide(
        spec, progressing(spec, step=1), seen(spec, {"v1": 50, "v2": 50}, values=GOOD), at(30)
    ).status
    back = decide(
        spec,
        prog.model_copy(update={"failed_checks": 1}),
        seen(spec, {"v1": 90, "v2": 10}, values=BAD),
        at(1),
    ).status
    for status in (init, prog, promo, back):
        assert status.deadline_at is not None, status.phase
        assert status.deadline_action in ("rollback", "fail"), status.phase


def test_problems_make_the_canary_invalid_and_nothing_is_patched(spec: CanarySpec) -> None:
    """A missing VirtualService is an InvalidSpec condition and an Event, once, and no write."""
    broken = seen(spec, None, problems=("VirtualService shop/accounts not found",))
    first = decide(spec, CanaryStatus(), broken, at(0))
    assert first.status.phase is Phase.INVALID
    assert conditions.is_true(first.status.conditions, conditions.INVALID_SPEC)
    # The Event is the only action: no weights, no fault, no scale-down, no webhook.
    assert [type(action) for action in first.actions] == [Notify]
    assert reasons(first) == ["InvalidSpec"]
    assert first.status.canary_weight == 0
    again = decide(spec, first.status, broken, at(30))
    assert again.actions == ()
    fixed = decide(spec, again.status, seen(spec, STABLE_ONLY), at(60))
    assert fixed.status.phase is Phase.PROGRESSING
    assert not conditions.is_true(fixed.status.conditions, conditions.INVALID_SPEC)


def test_problems_with_a_writable_route_patch_nothing_either(spec: CanarySpec) -> None:
    """A route that could be written (100/0 live, where a valid Canary takes its first step) is
    left alone while the Canary is Invalid: its only action is the Event."""
    broken = seen(spec, STABLE_ONLY, problems=("MetricTemplate shop/budget not found",))
    first = decide(spec, CanaryStatus(), broken, at(0))
    assert first.status.phase is Phase.INVALID
    assert [type(action) for action in first.actions] == [Notify]
    assert decide(spec, first.status, broken, at(30)).actions == ()
    # The same tick without the problem writes the first step: the test above can tell.
    assert weights_set(decide(spec, CanaryStatus(), seen(spec, STABLE_ONLY), at(0))) == [10]


def test_drift_is_corrected(spec: CanarySpec) -> None:
    """Another writer's weights are replaced by the step's weights on the next tick."""
    status = progressing(spec)
    decision = decide(spec, status, seen(spec, {"v1": 50, "v2": 50}), at(10))
    assert weights_set(decision) == [10]


def test_terminal_phases_stay_put(spec: CanarySpec) -> None:
    """Succeeded and Failed do nothing more until the revision changes."""
    failed = progressing(spec).model_copy(update={"phase": Phase.FAILED})
    assert decide(spec, failed, seen(spec, STABLE_ONLY), at(100)).actions == ()


def test_a_controller_that_was_away_does_not_spend_the_no_data_grace() -> None:
    """After a gap longer than two check intervals, onNoData: wait waits again from that tick;
    without a gap, the grace counts from the step's start."""
    spec = make_spec(
        checkInterval="5s",
        metrics=[
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "onNoData": "wait"}
        ],
    )
    status = progressing(spec).model_copy(
        update={"data_wait_from": at(0), "deadline_at": at(10_000)}
    )
    nothing = {"request-success-rate": Measurement.no_data()}
    back = decide(spec, status, seen(spec, live(spec, status), values=nothing), at(300))
    assert back.status.failed_checks == 0
    assert back.status.checks[-1].passed is None
    assert back.status.data_wait_from == at(300)
    current = status
    for second in (9, 18, 27, 31):
        current = decide(
            spec, current, seen(spec, live(spec, status), values=nothing), at(second)
        ).status
        assert current.data_wait_from == at(0)
    assert current.failed_checks == 1, "checked on time, the grace ran out an interval in"


def test_a_suspension_stamped_in_the_future_shifts_no_clock_back_on_resume(
    spec: CanarySpec,
) -> None:
    """A hand-edited (or clock-skewed) suspendedAt later than now froze nothing."""
    status = progressing(spec, step=1, started=100)
    status = status.model_copy(update={"suspended_at": at(400 * 86400)})
    decision = decide(spec, status, seen(spec, live(spec, status)), at(110))
    assert "Resumed" in reasons(decision)
    assert decision.status.step_started_at == at(100)
    assert decision.status.deadline_at == status.deadline_at
