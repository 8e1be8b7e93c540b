"""`LeaderElector.taken`, read when the leader steps down: whether it may still clear the
faults it held (its own Lease, stopping or past its renew deadline) or must write nothing (the
Lease names another holder, who acts already)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .test_lease import Campaign, FakeLeases, eventually

_started: list[Campaign] = []


@pytest.fixture
def leases() -> Iterator[FakeLeases]:
    yield FakeLeases()
    # A failed assertion must not leave an election running into later tests.
    while _started:
        campaign = _started.pop()
        campaign.stop.set()
        campaign.thread.join(timeout=5)


class _Watching(Campaign):
    def __init__(self, leases: FakeLeases, identity: str) -> None:
        self.taken_when_stopped: list[bool] = []
        super().__init__(leases, identity)
        _started.append(self)

    def _stopped(self) -> None:
        self.taken_when_stopped.append(self.elector.taken)
        super()._stopped()


def test_a_leader_that_stops_still_holds_its_lease_when_it_steps_down(
    leases: FakeLeases,
) -> None:
    a = _Watching(leases, "a")
    eventually(lambda: a.elector.is_leader)
    assert not a.elector.taken
    a.end()
    assert a.taken_when_stopped == [False]


def test_a_leader_past_its_renew_deadline_still_holds_its_lease(
    leases: FakeLeases,
) -> None:
    a = _Watching(leases, "a")
    eventually(lambda: a.elector.is_leader)
    leases.down = ConnectionRefusedError()
    eventually(lambda: a.taken_when_stopped != [], within=10.0)
    assert a.taken_when_stopped == [False]
    leases.down = None
    a.end()


def test_a_leader_whose_lease_was_taken_knows_it(leases: FakeLeases) -> None:
    a = _Watching(leases, "a")
    eventually(lambda: a.elector.is_leader)
    leases.overwrite("intruder")
    eventually(lambda: a.taken_when_stopped != [], within=2.0)
    assert a.taken_when_stopped == [True]
    a.end()
