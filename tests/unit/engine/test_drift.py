"""Another writer moves the weights of a live step: reassert them, or pause, as the spec says."""

from __future__ import annotations

from canary.api.spec import CanarySpec
from canary.api.status import Phase
from canary.engine import conditions
from canary.engine.actions import Decision, Notify, SetWeights
from canary.engine.decide import decide

from .builders import GOOD, at, make_spec, seen
from .test_decide import STABLE_ONLY, progressing

# The route as another writer left it: everything back on stable.
DRIFTED = STABLE_ONLY


def writes(decision: Decision) -> list[int]:
    return [a.canary_weight for a in decision.actions if isinstance(a, SetWeights)]


def notices(decision: Decision) -> list[Notify]:
    return [a for a in decision.actions if isinstance(a, Notify)]


def _paused_spec() -> CanarySpec:
    return CanarySpec.model_validate(make_spec().model_dump(by_alias=True) | {"onDrift": "pause"})


def test_drift_in_a_live_step_is_named_and_written_back(spec: CanarySpec) -> None:
    status = progressing(spec, step=1)
    decision = decide(spec, status, seen(spec, DRIFTED, writer="argocd"), at(5))
    assert writes(decision) == [status.canary_weight]
    [notice] = notices(decision)
    assert notice.reason == "WeightsDrifted"
    assert notice.warning
    assert "argocd" in notice.message
    assert "v1=100, v2=0" in notice.message
    # What was measured meanwhile judged a split nobody chose: the step holds again in full.
    assert decision.status.step_started_at is None
    assert decision.status.phase is Phase.PROGRESSING


def test_a_split_not_live_yet_is_our_own_write_on_its_way_not_drift(spec: CanarySpec) -> None:
    status = progressing(spec, step=1, started=None)
    decision = decide(spec, status, seen(spec, DRIFTED, writer="kubectl"), at(5))
    assert writes(decision) == [status.canary_weight]
    assert [n.reason for n in notices(decision)] == []


def test_a_mismatch_with_no_other_writer_is_healed_quietly(spec: CanarySpec) -> None:
    """After a restart between the status write and the weight write, the last writer is us."""
    status = progressing(spec, step=1)
    decision = decide(spec, status, seen(spec, DRIFTED), at(5))
    assert writes(decision) == [status.canary_weight]
    assert notices(decision) == []


def test_pause_stops_writing_until_the_route_is_restored_then_restarts_the_step() -> None:
    spec = _paused_spec()
    status = progressing(spec, step=0)
    weight = status.canary_weight
    paused = decide(spec, status, seen(spec, DRIFTED, writer="argocd"), at(5))
    assert writes(paused) == []
    assert [n.reason for n in notices(paused)] == ["WeightsDrifted"]
    assert conditions.is_true(paused.status.conditions, conditions.DRIFTED)
    # Still drifted, even once our own write would be the last: no write, no new Event.
    again = decide(
        spec,
        paused.status,
        seen(spec, DRIFTED),
        at(6),
    )
    assert writes(again) == []
    assert notices(again) == []
    live = {"v1": 100 - weight, "v2": weight}
    restored = decide(spec, again.status, seen(spec, live, writer="argocd", values=GOOD), at(7))
    assert [n.reason for n in notices(restored)] == ["WeightsRestored"]
    assert not conditions.is_true(restored.status.conditions, conditions.DRIFTED)
    clock = decide(spec, restored.status, seen(spec, live, values=GOOD), at(8))
    assert clock.status.step_started_at == at(8)


def test_a_paused_rollout_that_hits_its_deadline_still_rolls_back() -> None:
    spec = _paused_spec()
    paused = decide(spec, progressing(spec), seen(spec, DRIFTED, writer="argocd"), at(5)).status
    late = decide(spec, paused, seen(spec, DRIFTED), at(10_000))
    assert late.status.phase is Phase.ROLLING_BACK
    rolling = decide(spec, late.status, seen(spec, {"v1": 50, "v2": 50}), at(10_001))
    assert writes(rolling) == [0]


def test_on_drift_defaults_to_reassert() -> None:
    assert make_spec().on_drift == "reassert"
    assert _paused_spec().on_drift == "pause"
