"""The sequential comparison: its rules by table, and its false-alarm bound by simulation."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.api.comparison import Comparison, ComparisonVerdict, SequentialState
from canary.engine import sequential
from canary.engine.sequential import Counts
from tests import traffic

DEFAULT = Comparison()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fresh(**comparison: float) -> SequentialState:
    return sequential.start("errors", revision="r1", comparison=Comparison(**comparison))


def _after(readings: list[tuple[int, Counts]], **comparison: float) -> SequentialState:
    state = _fresh(**comparison)
    for step, counts in readings:
        state = sequential.observe(state, step=step, since=T0, counts=counts).state
    return state


def test_a_fresh_test_has_no_evidence_either_way() -> None:
    record = sequential.record(_fresh())
    assert record.verdict is ComparisonVerdict.UNDECIDED
    assert record.regression_evidence == pytest.approx(1.0)
    assert record.equivalence_evidence == pytest.approx(1.0)
    assert record.threshold == 100.0
    assert (record.canary.low, record.canary.high, record.canary.rate) == (0.0, 1.0, None)


@pytest.mark.parametrize(
    ("counts", "verdict"),
    [
        # 10% of the requests, half of the errors: 10x stable's rate.
        (Counts(1000, 50, 9000, 50), ComparisonVerdict.REGRESSION),
        # The same counts at half the traffic: exactly stable's rate.
        (Counts(5000, 50, 5000, 50), ComparisonVerdict.UNDECIDED),
        # Stable's rate to the request over 200,000 requests: equivalence within 1.5x.
        (Counts(100_000, 1000, 100_000, 1000), ComparisonVerdict.EQUIVALENT),
        # 1.5x over 200,000 requests: proven worse.
        (Counts(100_000, 1500, 100_000, 1000), ComparisonVerdict.REGRESSION),
        # Much better than stable: equivalent, never a regression.
        (Counts(10_000, 10, 10_000, 200), ComparisonVerdict.EQUIVALENT),
        # No bad events at all: nothing to tell the two apart.
        (Counts(10_000, 0, 10_000, 0), ComparisonVerdict.UNDECIDED),
    ],
)
def test_the_verdict_follows_the_counts_and_the_share(
    counts: Counts, verdict: ComparisonVerdict
) -> None:
    assert _after([(0, counts)]).verdict is verdict


def test_the_e_value_is_the_mixture_of_binomial_likelihood_ratios() -> None:
    """Against the textbook: the canary's share of the bad events is Binomial(m, theta(rho))."""
    n_c, x, n_s, y = 300.0, 9.0, 700.0, 6.0
    state = _after([(0, Counts(n_c, x, n_s, y))])

    def likelihood(ratio: float) -> float:
        theta = ratio * n_c / (ratio * n_c + n_s)
        return math.comb(15, 9) * theta**9 * (1 - theta) ** 6

    above = [ratio for ratio in sequential.GRID if ratio > 1.000001]
    weights = [1 / ratio for ratio in above]
    assert pytest.approx([w / sum(weights) for w in weights]) == sequential.REGRESSION_PRIOR
    expected = sum(
        w * likelihood(ratio) / likelihood(1.0) for w, ratio in zip(weights, above, strict=True)
    ) / sum(weights)
    assert math.exp(sequential.log_regression_evidence(state)) == pytest.approx(expected)
    window = [ratio for ratio in sequential.GRID if 1 / 1.5 - 1e-9 <= ratio < 1.5 - 1e-9]
    expected = sum(likelihood(r) for r in window) / len(window) / likelihood(1.5)
    assert math.exp(sequential.log_equivalence_evidence(state)) == pytest.approx(expected)


def test_readings_of_one_step_are_cumulative_and_each_request_counts_once() -> None:
    stepwise = _after([(0, Counts(100, 3, 900, 9)), (0, Counts(300, 9, 2700, 27))])
    at_once = _after([(0, Counts(300, 9, 2700, 27))])
    assert stepwise.log_evidence == pytest.approx(at_once.log_evidence)
    assert (stepwise.canary_requests, stepwise.stable_bad) == (300, 27)


def test_a_new_step_counts_from_its_own_start_with_its_own_share() -> None:
    state = _after([(0, Counts(100, 3, 900, 9)), (1, Counts(500, 5, 500, 5))])
    assert (state.step, state.canary_requests, state.canary_bad) == (1, 600, 8)
    assert (state.step_canary_requests, state.step_stable_requests) == (500, 500)
    # The share is carried: the same events as if the two steps were one reading each.
    parts = _after([(0, Counts(100, 3, 900, 9))])
    later = _after([(0, Counts(500, 5, 500, 5))])
    assert state.log_evidence == pytest.approx(
        [a + b for a, b in zip(parts.log_evidence, later.log_evidence, strict=True)]
    )


def test_a_step_whose_clock_starts_over_counts_from_zero_again() -> None:
    """Drift or a suspension restarts the step's clock: its counts start from that moment."""
    state = _after([(0, Counts(100, 3, 900, 9))])
    later = T0 + timedelta(seconds=30)
    again = sequential.observe(state, step=0, since=later, counts=Counts(50, 1, 450, 4))
    assert not again.record.message
    assert (again.state.canary_requests, again.state.since) == (150, later)
    earlier = sequential.observe(again.state, step=0, since=T0, counts=Counts(500, 10, 4500, 40))
    assert earlier.state is again.state
    assert "began before the one already counted" in earlier.record.message


def test_readings_without_bad_events_change_no_evidence() -> None:
    state = _after([(0, Counts(100, 2, 900, 5)), (0, Counts(5000, 2, 50_000, 5))])
    assert state.log_evidence == _after([(0, Counts(100, 2, 900, 5))]).log_evidence


def test_a_regression_once_proven_stays_proven() -> None:
    proven = _after([(0, Counts(1000, 50, 9000, 50))])
    assert proven.decided_after == 1000
    later = sequential.observe(
        proven, step=1, since=T0, counts=Counts(1_000_000, 10, 1_000_000, 10_000)
    )
    assert later.state.verdict is ComparisonVerdict.REGRESSION
    assert later.state.decided_after == 1000


def test_a_regression_overrides_an_earlier_equivalence() -> None:
    shown = _after([(0, Counts(100_000, 1000, 100_000, 1000))])
    assert shown.verdict is ComparisonVerdict.EQUIVALENT
    worse = sequential.observe(shown, step=1, since=T0, counts=Counts(50_000, 2500, 50_000, 500))
    assert worse.state.verdict is ComparisonVerdict.REGRESSION


@pytest.mark.parametrize(
    ("step", "counts", "words"),
    [
        (0, Counts(-1, 0, 10, 0), "canary requests: -1 is not a count"),
        (0, Counts(10, math.nan, 10, 0), "canary bad events: nan is not a count"),
        (0, Counts(10, 0, math.inf, 0), "stable requests: inf is not a count"),
        (0, Counts(10, 11, 10, 0), "canary: 11 bad events of 10 requests"),
        (0, Counts(10, 0, 1e16, 0), "stable requests: 1e+16 is more than any service serves"),
        (0, Counts(50, 1, 900, 9), "canary requests went down from 100 to 50 within step 0"),
        (0, Counts(100, 3, 900, 8), "stable bad events went down from 9 to 8"),
    ],
)
def test_counts_that_cannot_be_change_nothing_and_say_why(
    step: int, counts: Counts, words: str
) -> None:
    state = _after([(0, Counts(100, 3, 900, 9))])
    outcome = sequential.observe(state, step=step, since=T0, counts=counts)
    assert outcome.state is state
    assert words in outcome.record.message
    assert outcome.record.verdict is state.verdict


def test_an_earlier_step_is_refused() -> None:
    state = _after([(2, Counts(100, 3, 900, 9))])
    outcome = sequential.observe(state, step=1, since=T0, counts=Counts(200, 3, 900, 9))
    assert outcome.state is state
    assert "step 1 is before step 2" in outcome.record.message


def test_a_stored_test_of_another_grid_is_not_carried_on() -> None:
    state = _fresh().model_copy(update={"log_evidence": (0.0, 0.0)})
    outcome = sequential.observe(state, step=0, since=T0, counts=Counts(100, 3, 900, 9))
    assert outcome.state is state
    assert "grid points" in outcome.record.message


def test_a_restarted_controller_carries_the_same_test_on() -> None:
    """The state through the status's JSON and back goes on exactly as the one kept in memory."""
    kept = _after([(0, Counts(100, 3, 900, 9)), (1, Counts(200, 6, 800, 5))])
    wire = json.dumps(kept.to_wire())
    restored = SequentialState.model_validate(json.loads(wire))
    more = Counts(400, 13, 1600, 10)
    assert sequential.observe(restored, step=1, since=T0, counts=more) == sequential.observe(
        kept, step=1, since=T0, counts=more
    )


def test_the_state_is_bounded_however_long_the_test_runs() -> None:
    state = _fresh()
    size = len(json.dumps(state.to_wire()))
    for tick in range(1, 500):
        state = sequential.observe(
            state,
            step=tick // 50,
            since=T0,
            counts=Counts(tick % 50 * 10, tick % 50, tick % 50 * 90, tick % 50),
        ).state
    # Only the numbers' digits grow: the shape is a fixed grid and a few counts.
    assert len(json.dumps(state.to_wire())) < size + 40 * len(sequential.GRID)
    assert len(state.log_evidence) == len(sequential.GRID)


def test_the_record_states_each_rate_with_its_interval() -> None:
    record = sequential.record(_after([(0, Counts(1000, 41, 9000, 90))]))
    assert record.canary.rate == pytest.approx(0.041)
    assert record.canary.low < 0.041 < record.canary.high
    assert record.stable.low < 0.01 < record.stable.high
    assert record.stable.high - record.stable.low < record.canary.high - record.canary.low


# The A/A world: stable and canary identical, over shapes of rollout a controller meets.
_AA_WORLDS = (
    traffic.Rollout(),
    traffic.Rollout(weights=(1, 2, 5, 10, 20, 50), rps=100, stable_rate=0.005),
    traffic.Rollout(weights=(10, 50), rps=20, stable_rate=0.05, check_s=5),
    traffic.Rollout(weights=(50,), step_s=300, rps=10, stable_rate=0.2),
)
SEED = 16


def test_ten_thousand_a_a_rollouts_raise_fewer_false_alarms_than_alpha() -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    rollouts = 10_000
    alarms = sum(
        traffic.run(_AA_WORLDS[index % len(_AA_WORLDS)], DEFAULT, rng).regression_at is not None
        for index in range(rollouts)
    )
    print(
        f"seed {SEED}: {alarms} false alarms in {rollouts} A/A rollouts "
        f"({time.monotonic() - started:.1f}s)"
    )
    assert alarms / rollouts < DEFAULT.alpha


def test_the_same_harness_catches_a_test_that_peeks() -> None:
    """A fixed-horizon z-test looked at every check, on the same traffic, breaks its alpha: the
    simulation can tell a valid bound from a broken one."""
    rng = random.Random(SEED)
    alarms = sum(traffic.peeking_z_test(_AA_WORLDS[0], DEFAULT.alpha, rng) for _ in range(1000))
    assert alarms / 1000 > 3 * DEFAULT.alpha


def test_a_plain_regression_is_caught_within_the_rollout() -> None:
    rng = random.Random(SEED)
    caught = [traffic.run(traffic.Rollout(ratio=5), DEFAULT, rng) for _ in range(100)]
    assert all(outcome.regression_at is not None for outcome in caught)


def test_equivalence_is_shown_for_a_a_and_rarely_for_a_canary_min_effect_times_worse() -> None:
    """Equivalence's own error, calling a canary exactly minEffect times worse "equivalent",
    stays under alpha too, while identical versions are shown equivalent in most rollouts."""
    rng = random.Random(SEED)
    busy = traffic.Rollout(rps=400)
    rollouts = 1000
    same = sum(
        traffic.run(busy, DEFAULT, rng).equivalent_at is not None for _ in range(rollouts // 4)
    )
    worse = replace(busy, ratio=DEFAULT.min_effect)
    wrongly = sum(
        traffic.run(worse, DEFAULT, rng).equivalent_at is not None for _ in range(rollouts)
    )
    print(
        f"seed {SEED}: A/A equivalent in {same} of {rollouts // 4}; "
        f"{DEFAULT.min_effect}x called equivalent in {wrongly} of {rollouts}"
    )
    assert same / (rollouts // 4) > 0.5
    assert wrongly / rollouts < DEFAULT.alpha


def test_the_state_and_record_built_without_validation_equal_validated_ones() -> None:
    outcome = sequential.observe(_fresh(), step=1, since=T0, counts=Counts(1000, 41, 9000, 90))
    for built in (outcome.state, outcome.record):
        validated = type(built).model_validate(built.model_dump())
        assert built == validated
        assert built.model_fields_set == validated.model_fields_set


_side = st.integers(0, 5000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n)))
_reading = st.tuples(st.booleans(), _side, _side)
_garbage = st.sampled_from([math.nan, math.inf, -1.0, 1e300])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_reading, _garbage), max_size=30))
def test_any_stream_of_readings_is_counted_once_and_never_raises(readings: list[object]) -> None:
    """Whatever arrives, each accepted request is counted once, the evidence stays finite, and a
    proven regression is never taken back."""
    state, step, proven = _fresh(), 0, False
    counted = [0.0, 0.0, 0.0, 0.0]
    since_step = [0.0, 0.0, 0.0, 0.0]
    for reading in readings:
        if isinstance(reading, float):
            outcome = sequential.observe(
                state, step=step, since=T0, counts=Counts(reading, 0, 10, 0)
            )
            assert outcome.state is state
            assert outcome.record.message
            continue
        assert isinstance(reading, tuple)
        new_step, (n_c, x), (n_s, y) = reading
        if new_step:
            step, since_step = step + 1, [0.0, 0.0, 0.0, 0.0]
        fresh = [since_step[0] + n_c, since_step[1] + x, since_step[2] + n_s, since_step[3] + y]
        outcome = sequential.observe(state, step=step, since=T0, counts=Counts(*fresh))
        assert not outcome.record.message
        counted = [a + b for a, b in zip(counted, (n_c, x, n_s, y), strict=True)]
        since_step, state = fresh, outcome.state
        assert all(math.isfinite(value) for value in state.log_evidence)
        if proven:
            assert state.verdict is ComparisonVerdict.REGRESSION
        proven = state.verdict is ComparisonVerdict.REGRESSION
    totals = [state.canary_requests, state.canary_bad, state.stable_requests, state.stable_bad]
    assert totals == counted
