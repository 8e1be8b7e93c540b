"""Releases in a row: every rollout starts from the subset the route serves now."""

from __future__ import annotations

from typing import Any

from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Phase
from canary.engine.actions import Notify, SetWeights
from canary.engine.decide import decide
from canary.engine.observation import Measurement
from canary.engine.replay import Replay, Route

from .builders import T0, at, make_spec, seen

GOOD = lambda name, weight, t: Measurement.of(99.9, samples=500)  # noqa: E731


def _released(spec: CanarySpec, subset: str, **canary: Any) -> CanarySpec:
    """The spec with only `canary` changed, as a GitOps commit for the next release makes it."""
    wire = spec.model_dump(by_alias=True, exclude_none=True)
    wire["canary"] = {"subset": subset, **canary}
    return CanarySpec.model_validate(wire)


def _writes(replay: Replay, since: int = 0) -> list[SetWeights]:
    return [
        action
        for decision in replay.decisions[since:]
        for action in decision.actions
        if isinstance(action, SetWeights)
    ]


def _replay(spec: CanarySpec) -> Replay:
    return Replay(spec=spec, route=Route({"v1": 100}), measure=GOOD, start=T0, tick_seconds=10)


def test_the_second_release_starts_from_the_promoted_subset_not_spec_stable() -> None:
    """The issue's reproduction: v2 promoted with stepWeights [50], then canary.subset v3.
    The first write keeps v2 at 100 (v1, retired, gets nothing), and v3 rolls out over v2."""
    replay = _replay(make_spec(stepWeights=[50]))
    assert replay.run(max_ticks=50).phase is Phase.SUCCEEDED
    assert replay.status.stable_subset == "v2"
    since = len(replay.decisions)
    replay.spec = _released(replay.spec, "v3")
    status = replay.run(max_ticks=50)
    assert status.phase is Phase.SUCCEEDED, status.message
    writes = _writes(replay, since)
    assert [(w.stable_subset, w.canary_subset, w.canary_weight) for w in writes] == [
        ("v2", "v3", 50),
        ("v2", "v3", 100),
    ]
    assert replay.route.weights == {"v1": 0, "v2": 0, "v3": 100}
    [started] = [
        action.message
        for action in replay.decisions[since].actions
        if isinstance(action, Notify) and action.reason == "RolloutStarted"
    ]
    assert "rolling out v3 in place of v2" in started
    assert "spec.stable names v1, which gets no traffic back" in started


def test_three_releases_in_a_row_never_send_traffic_back_to_a_retired_subset() -> None:
    replay = _replay(make_spec(stepWeights=[10, 50]))
    replay.run(max_ticks=50)
    retired = {"v1"}
    for subset in ("v3", "v4"):
        since = len(replay.decisions)
        replay.spec = _released(replay.spec, subset)
        assert replay.run(max_ticks=50).phase is Phase.SUCCEEDED
        for write in _writes(replay, since):
            assert write.stable_subset not in retired
            assert write.canary_subset not in retired
        retired.add(replay.decisions[since].status.stable_subset)
    assert replay.route.weights == {"v1": 0, "v2": 0, "v3": 0, "v4": 100}


def test_a_failed_release_leaves_the_stable_subset_stable_for_the_next() -> None:
    replay = _replay(make_spec(stepWeights=[50]))
    replay.run(max_ticks=50)
    replay.spec = _released(replay.spec, "v3")
    replay.measure = lambda name, weight, t: Measurement.of(50.0, samples=500)
    assert replay.run(max_ticks=50).phase is Phase.FAILED
    assert replay.route.weights == {"v1": 0, "v2": 100, "v3": 0}
    replay.spec = _released(replay.spec, "v4")
    replay.measure = GOOD
    since = len(replay.decisions)
    assert replay.run(max_ticks=50).phase is Phase.SUCCEEDED
    assert {w.stable_subset for w in _writes(replay, since)} == {"v2"}


def test_a_split_nobody_can_name_the_stable_of_is_invalid_and_patches_nothing() -> None:
    """v1 and v2 both serve, neither is spec.stable nor the status's: Invalid, no write."""
    spec = _released(make_spec(), "v3")
    wire = spec.model_dump(by_alias=True, exclude_none=True)
    wire["stable"] = {"subset": "v0"}
    spec = CanarySpec.model_validate(wire)
    decision = decide(spec, replay_status(), seen(spec, {"v1": 60, "v2": 40}), at(0))
    assert decision.status.phase is Phase.INVALID
    assert "v1 (60%), v2 (40%)" in decision.status.message
    assert "set spec.stable.subset" in decision.status.message
    assert not [a for a in decision.actions if isinstance(a, SetWeights)]


def test_a_split_with_the_spec_stable_among_it_starts_from_spec_stable() -> None:
    spec = _released(make_spec(), "v3")
    decision = decide(spec, replay_status(), seen(spec, {"v1": 60, "v2": 40}), at(0))
    writes = [a for a in decision.actions if isinstance(a, SetWeights)]
    assert [(w.stable_subset, w.canary_weight) for w in writes] == [("v1", 0)]


def test_a_new_pod_template_mid_rollout_starts_over_from_the_first_step() -> None:
    replay = _replay(make_spec(stepWeights=[10, 50]))
    replay.target_revision = "image-a"
    for _ in range(30):
        replay.run(max_ticks=1)
        if replay.status.phase is Phase.PROGRESSING and replay.status.step == 1:
            break
    assert replay.status.step == 1
    assert replay.status.target_revision == "image-a"
    replay.target_revision = "image-b"
    since = len(replay.decisions)
    replay.run(max_ticks=1)
    restarted = replay.status
    assert restarted.phase in (Phase.INITIALIZING, Phase.PROGRESSING)
    assert restarted.target_revision == "image-b"
    assert any(
        isinstance(action, Notify)
        and action.reason == "RolloutRestarted"
        and "a new pod template" in action.message
        for action in replay.decisions[since].actions
    )
    assert [w.canary_weight for w in _writes(replay, since)][:1] == [0]
    assert replay.run(max_ticks=50).phase is Phase.SUCCEEDED
    assert [w.canary_weight for w in _writes(replay, since)] == [0, 10, 50, 100]


def test_scale_down_after_scales_the_retired_deployment_once_the_promotion_held() -> None:
    spec = make_spec(stepWeights=[50])
    wire = spec.model_dump(by_alias=True, exclude_none=True)
    wire["stable"]["targetRef"] = {"name": "accounts-v1"}
    wire["canary"]["targetRef"] = {"name": "accounts-v2"}
    wire["scaleDownAfter"] = "1m"
    replay = _replay(CanarySpec.model_validate(wire))
    replay.target_ready = True
    assert replay.run(max_ticks=50).phase is Phase.SUCCEEDED
    assert replay.status.retired_target == "accounts-v1"
    assert replay.status.stable_target == "accounts-v2"
    since = len(replay.decisions)
    for _ in range(10):
        # A replay stops at a terminal phase: each run is one tick of the promoted Canary.
        replay.run(max_ticks=1)
    scaled = [
        action
        for decision in replay.decisions[since:]
        for action in decision.actions
        if type(action).__name__ == "ScaleToZero"
    ]
    assert [getattr(action, "target", None) for action in scaled] == ["accounts-v1"]
    assert replay.status.scaled_down_at is not None


def replay_status() -> CanaryStatus:
    return CanaryStatus()
