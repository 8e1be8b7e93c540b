"""The local store and router: objects on disk, weights patched in place, applied on ack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canary.api.status import CanaryStatus, Phase
from canary.demo import scenario
from canary.engine.actions import Notify, SetWeights
from canary.errors import InvalidSpec
from canary.localmesh.router import LocalRouter
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey, RouteRef

REF = RouteRef(namespace="default", virtual_service="demo", host="demo", route="primary")


class FakePlane:
    def __init__(self) -> None:
        self.pushed: list[list[dict[str, Any]]] = []
        self.acknowledged: int | None = None
        self.faults: list[Any] = []

    def push(
        self,
        virtual_services: Any,
        destination_rules: Any,
        gateways: Any = (),
        peer_authentications: Any = None,
    ) -> int:
        self.pushed.append(list(virtual_services))
        return len(self.pushed)

    def applied_version(self) -> int | None:
        return self.acknowledged

    def set_faults(self, planned: Any) -> None:
        self.faults = list(planned)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "state")
    for body in (scenario.virtual_service(), scenario.destination_rule(), scenario.canary()):
        store.put(body)
    return store


def test_generation_moves_with_the_spec_and_resource_version_with_every_write(
    store: LocalStore,
) -> None:
    first = store.get("Canary", "default", "demo")
    assert first is not None
    again = store.put(scenario.canary())
    assert again["metadata"]["generation"] == first["metadata"]["generation"]
    assert int(again["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    changed = store.put(scenario.canary(step_seconds=20))
    assert changed["metadata"]["generation"] == first["metadata"]["generation"] + 1


def test_status_survives_a_new_store_on_the_same_directory(store: LocalStore) -> None:
    """A restarted (or second) process reads the status the first one wrote."""
    key = CanaryKey("default", "demo")
    store.write_status(key, CanaryStatus(phase=Phase.PROGRESSING, canary_weight=25))
    reopened = LocalStore(store.root)
    stored = reopened.canaries()
    assert stored[0].status.canary_weight == 25
    assert stored[0].spec is not None


def test_an_invalid_canary_on_disk_is_reported_not_raised(store: LocalStore) -> None:
    broken = scenario.canary()
    broken["spec"]["analysis"]["stepWeights"] = [50, 10]
    store.put(broken)
    stored = store.canaries()[0]
    assert stored.spec is None
    assert "stepWeights[1]" in stored.problems[0]


def test_events_are_appended(store: LocalStore) -> None:
    store.notify(CanaryKey("default", "demo"), Notify("Promoted", "v2 is stable"))
    assert store.events()[-1]["reason"] == "Promoted"


def test_weights_are_patched_and_applied_only_once_envoy_acknowledges(store: LocalStore) -> None:
    plane = FakePlane()
    router = LocalRouter(store, plane)
    assert router.read(REF).weights == {"v1": 100, "v2": 0}
    router.set_weights(REF, SetWeights("v1", "v2", 25))
    traffic = router.read(REF)
    assert traffic.weights == {"v1": 75, "v2": 25}
    assert not traffic.applied
    plane.acknowledged = len(plane.pushed)
    assert router.read(REF).applied


def test_only_weights_change_in_the_virtual_service(store: LocalStore) -> None:
    """Every other field (here an extra header and a timeout) is left as it was."""
    vs = scenario.virtual_service()
    vs["spec"]["http"][0]["timeout"] = "3s"
    vs["spec"]["http"][0]["route"][0]["headers"] = {"request": {"set": {"x-a": "1"}}}
    store.put(vs)
    LocalRouter(store, FakePlane()).set_weights(REF, SetWeights("v1", "v2", 40))
    after = store.get("VirtualService", "default", "demo")
    assert after is not None
    expected = vs["spec"]
    expected["http"][0]["route"][0]["weight"] = 60
    expected["http"][0]["route"][1]["weight"] = 40
    assert after["spec"] == expected


def test_another_writers_edit_is_published_on_the_next_read(store: LocalStore) -> None:
    plane = FakePlane()
    router = LocalRouter(store, plane)
    router.read(REF)
    vs = store.get("VirtualService", "default", "demo")
    assert vs is not None
    vs["spec"]["http"][0]["timeout"] = "9s"
    store.put(vs)
    router.read(REF)
    assert plane.pushed[-1][0]["spec"]["http"][0]["timeout"] == "9s"


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        (RouteRef("default", "nope", "demo", None), "VirtualService default/nope not found"),
        (RouteRef("default", "demo", "demo", "secondary"), "no http route named 'secondary'"),
        (RouteRef("default", "demo", "other", None), "all go to 'other'"),
    ],
)
def test_a_route_that_cannot_be_found_is_invalid_and_nothing_is_pushed(
    store: LocalStore, ref: RouteRef, words: str
) -> None:
    plane = FakePlane()
    router = LocalRouter(store, plane)
    with pytest.raises(InvalidSpec, match=words):
        router.set_weights(ref, SetWeights("v1", "v2", 10))
    assert plane.pushed == []
