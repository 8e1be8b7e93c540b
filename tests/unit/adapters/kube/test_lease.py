"""Leader election against an in-memory Lease API that keeps resourceVersions as the server does."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s

from canary.adapters.kube import lease
from canary.adapters.kube.lease import Attempt, LeaderElector

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|\+00:00)$")


class FakeLeases:
    """The three Lease calls, with 404, 409 on a stale resourceVersion, and an outage switch."""

    def __init__(self) -> None:
        self.stored: k8s.V1Lease | None = None
        self.version = 0
        self.reads = 0
        self.down: Exception | None = None
        # Runs inside the next update, before it is checked: another writer's race.
        self.interfere: Callable[[], None] | None = None
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._serializer = k8s.ApiClient()

    def read_namespaced_lease(
        self, name: str, namespace: str, *, _request_timeout: float
    ) -> k8s.V1Lease:
        with self._lock:
            self._check(_request_timeout)
            self.reads += 1
            if self.stored is None:
                raise k8s.ApiException(status=404, reason="NotFound")
            return self.stored.model_copy(deep=True)

    def create_namespaced_lease(
        self, namespace: str, body: k8s.V1Lease, *, field_manager: str, _request_timeout: float
    ) -> k8s.V1Lease:
        with self._lock:
            self._check(_request_timeout)
            if self.stored is not None:
                raise k8s.ApiException(status=409, reason="AlreadyExists")
            return self._store(body)

    def replace_namespaced_lease(
        self,
        name: str,
        namespace: str,
        body: k8s.V1Lease,
        *,
        field_manager: str,
        _request_timeout: float,
    ) -> k8s.V1Lease:
        interfere, self.interfere = self.interfere, None
        if interfere is not None:
            interfere()
        with self._lock:
            self._check(_request_timeout)
            if self.stored is None:
                raise k8s.ApiException(status=404, reason="NotFound")
            assert body.metadata is not None
            if body.metadata.resource_version != str(self.version):
                raise k8s.ApiException(status=409, reason="Conflict")
            return self._store(body)

    def spec(self) -> k8s.V1LeaseSpec:
        assert self.stored is not None
        assert self.stored.spec is not None
        return self.stored.spec

    def overwrite(self, holder: str) -> None:
        """Someone else's write, as another controller (or a person) would make it."""
        now = datetime.now(UTC)
        spec = k8s.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15, renew_time=now)
        with self._lock:
            if self.stored is None:
                self.stored = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name="canary"), spec=spec)
            self.version += 1
            self.stored = self.stored.model_copy(update={"spec": spec})
            assert self.stored.metadata is not None
            self.stored.metadata.resource_version = str(self.version)

    def _check(self, timeout: float) -> None:
        assert timeout > 0
        if self.down is not None:
            raise self.down

    def _store(self, body: k8s.V1Lease) -> k8s.V1Lease:
        self.bodies.append(self._serializer.sanitize_for_serialization(body))  # type: ignore[no-untyped-call]
        self.version += 1
        stored = body.model_copy(deep=True)
        assert stored.metadata is not None
        stored.metadata.resource_version = str(self.version)
        self.stored = stored
        return stored.model_copy(deep=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def elector(
    leases: FakeLeases,
    identity: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    **timing: float,
) -> LeaderElector:
    return LeaderElector(
        leases, namespace="canary-system", name="canary", identity=identity, clock=clock, **timing
    )


def eventually(predicate: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Campaign:
    """One elector's `run` on a thread, recording its callbacks in order."""

    def __init__(self, leases: FakeLeases, identity: str) -> None:
        self.elector = elector(
            leases, identity, lease_seconds=1, renew_seconds=0.2, retry_seconds=0.05
        )
        self.leases = leases
        self.calls: list[str] = []
        # The holder the Lease showed when on_stopped ran: proves we stop before releasing.
        self.holder_when_stopped: list[str | None] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.elector.run, args=(self.stop, self._started, self._stopped), daemon=True
        )
        self.thread.start()
        _running.append(self)

    def _started(self) -> None:
        self.calls.append("started")

    def _stopped(self) -> None:
        self.calls.append("stopped")
        self.holder_when_stopped.append(self.leases.spec().holder_identity)

    def end(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


# Every Campaign a test started: one a failed assertion left running would log its lease errors
# into every later test's output.
_running: list[Campaign] = []


@pytest.fixture(autouse=True)
def _campaigns_end() -> Iterator[None]:
    yield
    while _running:
        campaign = _running.pop()
        campaign.stop.set()
        campaign.thread.join(timeout=5)


@pytest.fixture
def leases() -> FakeLeases:
    return FakeLeases()


def test_creates_the_lease_when_absent(leases: FakeLeases) -> None:
    assert elector(leases, "a").try_acquire_or_renew() is Attempt.HELD
    spec = leases.spec()
    assert (spec.holder_identity, spec.lease_duration_seconds, spec.lease_transitions) == (
        "a",
        15,
        0,
    )
    assert spec.acquire_time == spec.renew_time


def test_renews_from_its_own_write_without_reading(leases: FakeLeases) -> None:
    a = elector(leases, "a")
    a.try_acquire_or_renew()
    a._leading = True  # as run() marks it once the Lease is won
    acquired = leases.spec().acquire_time
    reads = leases.reads
    assert a.try_acquire_or_renew() is Attempt.HELD
    assert leases.reads == reads
    assert leases.spec().acquire_time == acquired
    assert leases.spec().renew_time != acquired


def test_waits_for_another_holders_lease_to_expire_on_its_own_clock(leases: FakeLeases) -> None:
    clock = FakeClock()
    assert elector(leases, "a", clock=clock).try_acquire_or_renew() is Attempt.HELD
    b = elector(leases, "b", clock=clock)
    assert b.try_acquire_or_renew() is Attempt.TAKEN
    clock.now += 14.9
    assert b.try_acquire_or_renew() is Attempt.TAKEN
    clock.now += 0.2
    assert b.try_acquire_or_renew() is Attempt.HELD
    assert (leases.spec().holder_identity, leases.spec().lease_transitions) == ("b", 1)


def test_a_renewal_seen_restarts_the_wait(leases: FakeLeases) -> None:
    clock = FakeClock()
    a = elector(leases, "a", clock=clock)
    a.try_acquire_or_renew()
    b = elector(leases, "b", clock=clock)
    assert b.try_acquire_or_renew() is Attempt.TAKEN
    clock.now += 10
    a.try_acquire_or_renew()
    assert b.try_acquire_or_renew() is Attempt.TAKEN
    clock.now += 14
    assert b.try_acquire_or_renew() is Attempt.TAKEN
    clock.now += 1.1
    assert b.try_acquire_or_renew() is Attempt.HELD


def test_a_released_lease_is_taken_at_once(leases: FakeLeases) -> None:
    leases.overwrite("")
    assert elector(leases, "b").try_acquire_or_renew() is Attempt.HELD


def test_a_restarted_process_keeps_its_own_lease(leases: FakeLeases) -> None:
    """Same identity (the pod's name across a container restart): no wait, no new transition."""
    elector(leases, "a").try_acquire_or_renew()
    acquired = leases.spec().acquire_time
    assert elector(leases, "a").try_acquire_or_renew() is Attempt.HELD
    assert (leases.spec().acquire_time, leases.spec().lease_transitions) == (acquired, 0)


def test_of_two_racing_for_an_expired_lease_only_one_wins(leases: FakeLeases) -> None:
    leases.overwrite("")
    a, b = elector(leases, "a"), elector(leases, "b")
    won: list[Attempt] = []
    leases.interfere = lambda: won.append(a.try_acquire_or_renew())
    assert b.try_acquire_or_renew() is Attempt.FAILED
    assert won == [Attempt.HELD]
    assert leases.spec().holder_identity == "a"


@pytest.mark.parametrize(
    "error",
    [
        urllib3.exceptions.MaxRetryError(None, "/", reason=ConnectionRefusedError()),  # type: ignore[arg-type]
        urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"),  # type: ignore[arg-type]
        k8s.ApiException(status=403, reason="Forbidden"),
        k8s.ApiException(status=503, reason="ServiceUnavailable"),
        ConnectionResetError(),
    ],
)
def test_an_api_error_is_a_failed_attempt_not_a_crash(leases: FakeLeases, error: Exception) -> None:
    leases.down = error
    assert elector(leases, "a").try_acquire_or_renew() is Attempt.FAILED


def test_times_are_written_as_micro_time_even_on_a_whole_second(
    leases: FakeLeases, monkeypatch: pytest.MonkeyPatch
) -> None:
    class WholeSecond(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> WholeSecond:
            return cls(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC)

    monkeypatch.setattr(lease, "datetime", WholeSecond)
    elector(leases, "a").try_acquire_or_renew()
    spec = leases.bodies[-1]["spec"]
    assert MICRO_TIME.match(spec["renewTime"]), spec
    assert MICRO_TIME.match(spec["acquireTime"]), spec


@pytest.mark.parametrize(
    ("renew", "retry"),
    [
        (5, 0),  # no pause between attempts
        (5, 6),  # a failed renewal retried after the next renewal was due
        (8, 2),  # no time left to retry before the deadline
    ],
)
def test_timings_that_cannot_work_are_refused(
    leases: FakeLeases, renew: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="seconds"):
        elector(leases, "a", renew_seconds=renew, retry_seconds=retry)


def test_one_of_two_leads_and_the_other_takes_over_when_it_stops(leases: FakeLeases) -> None:
    a = Campaign(leases, "a")
    eventually(lambda: a.elector.is_leader)
    b = Campaign(leases, "b")
    time.sleep(0.3)
    assert not b.elector.is_leader
    started = time.monotonic()
    a.end()
    eventually(lambda: b.elector.is_leader, within=1.0)
    # Released, so well inside the one-second lease.
    assert time.monotonic() - started < 0.5
    assert a.calls == ["started", "stopped"]
    assert a.holder_when_stopped == ["a"]
    b.end()
    assert leases.spec().holder_identity == ""
    assert b.calls == ["started", "stopped"]


def test_a_leader_that_cannot_renew_steps_down_before_its_lease_expires(
    leases: FakeLeases,
) -> None:
    a = Campaign(leases, "a")
    eventually(lambda: a.elector.is_leader)
    leases.down = ConnectionRefusedError()
    cut = time.monotonic()
    eventually(lambda: not a.elector.is_leader, within=10.0)
    # The last renewal started before the cut, so stepping down by then is within the lease.
    assert time.monotonic() - cut < a.elector.lease_seconds
    # is_leader turns False just before on_stopped runs, on the elector's thread.
    eventually(lambda: a.calls == ["started", "stopped"], within=2.0)
    leases.down = None
    eventually(lambda: a.elector.is_leader)
    assert a.calls == ["started", "stopped", "started"]
    a.end()


def test_a_leader_whose_lease_was_taken_steps_down_at_once(leases: FakeLeases) -> None:
    a = Campaign(leases, "a")
    eventually(lambda: a.elector.is_leader)
    leases.overwrite("intruder")
    eventually(lambda: not a.elector.is_leader, within=0.5)
    a.end()
    assert leases.spec().holder_identity == "intruder"
    assert a.calls == ["started", "stopped"]


def test_on_started_failing_still_steps_down_and_releases(leases: FakeLeases) -> None:
    stopped: list[bool] = []

    def broken() -> None:
        raise RuntimeError("scheduler would not start")

    a = elector(leases, "a", lease_seconds=1, renew_seconds=0.2, retry_seconds=0.05)
    with pytest.raises(RuntimeError):
        a.run(threading.Event(), broken, lambda: stopped.append(True))
    assert stopped == [True]
    assert leases.spec().holder_identity == ""
