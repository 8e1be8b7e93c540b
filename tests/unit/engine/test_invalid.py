"""engine/invalid.py by table: what an Invalid Canary writes, given the split it left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from canary.api.status import CanaryStatus, Phase
from canary.engine import conditions
from canary.engine.actions import ClearFaults, Notify, SetWeights
from canary.engine.invalid import invalid
from canary.engine.observation import ActiveFault, Observation, Traffic

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MOVED = CanaryStatus(
    phase=Phase.PROGRESSING, stable_subset="v1", canary_subset="v2", canary_weight=20
)


def _seen(
    weights: dict[str, int] | None, faults: tuple[ActiveFault, ...] | None = ()
) -> Observation:
    traffic = None if weights is None else Traffic(weights=weights, applied=True)
    return Observation(revision="r", traffic=traffic, faults=faults)


def _restored(status: CanaryStatus) -> tuple[str, str] | None:
    for condition in status.conditions:
        if condition.type == conditions.STABLE_RESTORED:
            return condition.status, condition.reason
    return None


@pytest.mark.parametrize(
    ("weights", "write", "condition"),
    [
        ({"v1": 80, "v2": 20}, SetWeights("v1", "v2", 0), ("True", "InvalidSpec")),
        # A third subset that still gets traffic goes back too, whatever it is.
        ({"v1": 70, "v2": 20, "v0": 10}, SetWeights("v1", "v2", 0), ("True", "InvalidSpec")),
        ({"v1": 90, "v0": 10, "v2": 0}, SetWeights("v1", "v0", 0), ("True", "InvalidSpec")),
        ({"v1": 100, "v2": 0}, None, None),
        # The stable subset is gone from the route: nowhere safe to send it.
        ({"v2": 100}, None, ("False", "NoStableSubset")),
        # The route could not be read: nothing is written blind.
        (None, None, ("False", "RouteUnknown")),
    ],
)
def test_the_split_an_invalid_canary_leaves(
    weights: dict[str, int] | None, write: SetWeights | None, condition: tuple[str, str] | None
) -> None:
    decision = invalid(MOVED, ("a problem",), now=NOW, seen=_seen(weights))
    writes = [a for a in decision.actions if isinstance(a, SetWeights)]
    assert writes == ([] if write is None else [write])
    assert _restored(decision.status) == condition
    assert decision.status.phase is Phase.INVALID
    assert decision.status.canary_weight == (0 if write else 20)


def test_faults_are_cleared_before_the_weights_move() -> None:
    fault = ActiveFault("abort", "v2", NOW)
    decision = invalid(MOVED, ("a problem",), now=NOW, seen=_seen({"v1": 80, "v2": 20}, (fault,)))
    kinds = [type(a) for a in decision.actions if not isinstance(a, Notify)]
    assert kinds == [ClearFaults, SetWeights]


def test_faults_that_could_not_be_read_are_cleared_too() -> None:
    decision = invalid(MOVED, ("a problem",), now=NOW, seen=_seen({"v1": 100, "v2": 0}, None))
    assert any(isinstance(a, ClearFaults) for a in decision.actions)


def test_a_second_tick_with_nothing_to_do_changes_nothing() -> None:
    first = invalid(MOVED, ("a problem",), now=NOW, seen=_seen({"v1": 80, "v2": 20}))
    second = invalid(first.status, ("a problem",), now=NOW, seen=_seen({"v1": 100, "v2": 0}))
    assert second.status is first.status
    assert second.actions == ()
