"""Preflight in the state machine: items in, hold or go out, with the Preflight condition."""

from __future__ import annotations

import dataclasses

import pytest

from canary.api.commands import Command, Verb
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Phase
from canary.engine import conditions, preflight
from canary.engine.actions import Decision, Notify, SetWeights
from canary.engine.decide import decide
from canary.engine.observation import Observation
from canary.engine.preflight import ItemState, PreflightItem

from .builders import GOOD, at, make_spec, seen

STABLE_ONLY = {"v1": 100, "v2": 0}
OK = PreflightItem("sidecars", ItemState.OK, "v1 2/2, v2 2/2")
SKIPPED = PreflightItem("callers' proxies", ItemState.SKIPPED, "not checked: no proxy visible")
FAILED = PreflightItem("sidecars", ItemState.FAILED, "subset v2: p1 without istio-proxy", "inject")
UNKNOWN = PreflightItem("sidecars", ItemState.UNKNOWN, "cannot list pods: forbidden", "grant")
NO_SERIES = PreflightItem("metric series", ItemState.FAILED, 'no series x{a="b"}', "scrape")


def with_items(observation: Observation, *items: PreflightItem) -> Observation:
    return dataclasses.replace(observation, preflight=tuple(items))


def condition(decision: Decision) -> conditions.Condition | None:
    return next((c for c in decision.status.conditions if c.type == preflight.PREFLIGHT), None)


def reasons(decision: Decision) -> list[str]:
    return [a.reason for a in decision.actions if isinstance(a, Notify)]


def weights_set(decision: Decision) -> list[int]:
    return [a.canary_weight for a in decision.actions if isinstance(a, SetWeights)]


@pytest.mark.parametrize(
    ("items", "holds", "state"),
    [
        ((OK,), False, "True"),
        ((OK, SKIPPED), False, "True"),
        ((SKIPPED,), False, "True"),
        ((FAILED,), True, "False"),
        ((UNKNOWN,), True, "False"),
        ((OK, SKIPPED, NO_SERIES), True, "False"),
        ((), False, "True"),
    ],
)
def test_items_hold_the_first_step_or_let_it_go(
    spec: CanarySpec, items: tuple[PreflightItem, ...], holds: bool, state: str
) -> None:
    """Any item failed or unknown holds Initializing; ok and skipped ones let the step start."""
    decision = decide(spec, CanaryStatus(), with_items(seen(spec, STABLE_ONLY), *items), at(0))
    found = condition(decision)
    assert found is not None
    assert found.status == state
    assert found.message == preflight.message(items)
    if holds:
        assert decision.status.phase is Phase.INITIALIZING
        assert weights_set(decision) == []
        assert decision.status.message.startswith("waiting for preflight: ")
        assert all(item.line() in found.message for item in items)
        assert "PreflightFailed" in reasons(decision)
    else:
        assert decision.status.phase is Phase.PROGRESSING
        assert weights_set(decision) == [10]
        assert "PreflightPassed" in reasons(decision)


def test_a_failing_item_says_what_to_fix_in_the_condition_and_the_status() -> None:
    spec = make_spec()
    decision = decide(spec, CanaryStatus(), with_items(seen(spec, STABLE_ONLY), FAILED), at(0))
    found = condition(decision)
    assert found is not None
    assert found.reason == "PreflightFailed"
    assert found.message == "✗ sidecars: subset v2: p1 without istio-proxy; fix: inject"
    assert decision.status.message == (
        "waiting for preflight: ✗ sidecars: subset v2: p1 without istio-proxy; fix: inject"
    )


def test_the_event_is_written_once_per_new_set_of_problems(spec: CanarySpec) -> None:
    first = decide(spec, CanaryStatus(), with_items(seen(spec, STABLE_ONLY), FAILED), at(0))
    again = decide(spec, first.status, with_items(seen(spec, STABLE_ONLY), FAILED), at(1))
    assert reasons(again) == []
    assert again.status.conditions == first.status.conditions
    other = decide(spec, again.status, with_items(seen(spec, STABLE_ONLY), UNKNOWN), at(2))
    assert reasons(other) == ["PreflightFailed"]
    worse = decide(
        spec, other.status, with_items(seen(spec, STABLE_ONLY), UNKNOWN, NO_SERIES), at(3)
    )
    assert reasons(worse) == ["PreflightFailed"]


def test_fixed_items_let_the_rollout_start_on_the_next_tick(spec: CanarySpec) -> None:
    held = decide(spec, CanaryStatus(), with_items(seen(spec, STABLE_ONLY), FAILED), at(0))
    fixed = decide(spec, held.status, with_items(seen(spec, STABLE_ONLY), OK), at(5))
    assert fixed.status.phase is Phase.PROGRESSING
    assert weights_set(fixed) == [10]
    found = condition(fixed)
    assert found is not None
    assert found.status == "True"
    assert found.last_transition_time == at(5)
    assert reasons(fixed) == ["PreflightPassed", "StepStarted"]


def test_a_preflight_held_past_the_deadline_rolls_back(spec: CanarySpec) -> None:
    held = decide(spec, CanaryStatus(), with_items(seen(spec, STABLE_ONLY), FAILED), at(0))
    late = decide(spec, held.status, with_items(seen(spec, STABLE_ONLY), FAILED), at(121))
    assert late.status.phase is Phase.ROLLING_BACK


def test_not_gathered_means_not_judged(spec: CanarySpec) -> None:
    """None: passed already for this rollout, or no preflight in this controller."""
    decision = decide(spec, CanaryStatus(), seen(spec, STABLE_ONLY), at(0))
    assert condition(decision) is None
    assert decision.status.phase is Phase.PROGRESSING


def test_readiness_is_waited_for_before_preflight_is_judged() -> None:
    raw = make_spec().model_dump(by_alias=True, exclude_none=True)
    raw["canary"]["targetRef"] = {"kind": "Deployment", "name": "web-v2"}
    spec = CanarySpec.model_validate(raw)
    observed = with_items(seen(spec, STABLE_ONLY, ready=False), FAILED)
    decision = decide(spec, CanaryStatus(), observed, at(0))
    assert decision.status.message == "waiting for Deployment web-v2 to be ready"
    assert condition(decision) is None


def test_a_new_rollout_clears_the_last_ones_preflight(spec: CanarySpec) -> None:
    passed = decide(spec, CanaryStatus(), with_items(seen(spec, STABLE_ONLY), OK), at(0))
    assert not preflight.needed(passed.status.conditions)
    changed = make_spec(stepWeights=[20, 60])
    restarted = decide(
        changed, passed.status, with_items(seen(changed, live_at(passed)), FAILED), at(10)
    )
    assert restarted.status.phase is Phase.INITIALIZING
    # Cleared with the restart; the split goes back to stable before anything is judged.
    assert condition(restarted) is None
    assert weights_set(restarted) == [0]
    back = decide(changed, restarted.status, with_items(seen(changed, STABLE_ONLY), FAILED), at(11))
    found = condition(back)
    assert found is not None
    assert found.status == "False"
    assert back.status.phase is Phase.INITIALIZING
    assert weights_set(back) == []


def live_at(decision: Decision) -> dict[str, int]:
    weight = decision.status.canary_weight
    return {"v1": 100 - weight, "v2": weight}


def test_ticks_past_initializing_never_read_preflight(spec: CanarySpec) -> None:
    """Items handed to a step's tick change nothing: the engine asks only in Initializing."""
    started = decide(spec, CanaryStatus(), with_items(seen(spec, STABLE_ONLY), OK), at(0))
    step = decide(spec, started.status, seen(spec, live_at(started), values=GOOD), at(1))
    with_failed = decide(
        spec,
        started.status,
        with_items(seen(spec, live_at(started), values=GOOD), FAILED),
        at(1),
    )
    assert with_failed == step


def test_an_item_line_is_one_line_whatever_it_saw() -> None:
    item = PreflightItem("x", ItemState.FAILED, "a\nb\r\nc", "do\tthis")
    assert item.line() == "✗ x: a b c; fix: do this"


def test_a_retried_rollout_is_checked_again(spec: CanarySpec) -> None:
    """canary retry starts over from a Failed rollout whose preflight had passed."""
    passed = decide(spec, CanaryStatus(), with_items(seen(spec, STABLE_ONLY), OK), at(0))
    failed = passed.status.model_copy(update={"phase": Phase.FAILED, "canary_weight": 0})
    retried = dataclasses.replace(
        with_items(seen(spec, STABLE_ONLY), FAILED), command=Command(verb=Verb.RETRY, id="r1")
    )
    decision = decide(spec, failed, retried, at(10))
    assert decision.status.phase is Phase.INITIALIZING
    found = condition(decision)
    assert found is not None
    assert found.status == "False"
    assert weights_set(decision) == []
