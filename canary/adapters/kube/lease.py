"""Leader election on a `coordination.k8s.io/v1` Lease by client-go's rules: one replica acts.

The Lease holds the leader's identity, its lease duration and the time of its last renewal. A
candidate takes the Lease when it is absent, released (no holder), ours, or expired. Expiry is
judged as client-go judges it: by how long *this* process has seen the record unchanged on its
own monotonic clock, never by comparing the stored renewTime with our wall clock, so a node whose
clock is ahead cannot steal a live lease. The price: a process that starts next to a dead
leader's stale Lease waits one lease duration before taking it.

Every write is an update carrying the resourceVersion that was read (or that we last wrote), so
two candidates racing for an expired Lease cannot both win: the loser gets 409 and reads again.

The leader renews every `renew_seconds`. When renewals fail it retries every `retry_seconds`,
and it stops leading once its last successful renewal *started* `lease_seconds - renew_seconds`
ago: another candidate can take over only `lease_seconds` after it saw that renewal, which keeps
a whole renewal period for the process to stop acting. On `stop`, the leader first calls
`on_stopped`, then releases the Lease (no holder, a one-second duration) so a standby takes
over at its next attempt instead of after a lease duration.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

import structlog
import urllib3
from kubernetes import client as k8s

from canary.adapters.kube.rest import FIELD_MANAGER

log = structlog.get_logger("canary.lease")

# The client rejects a zero timeout; a leader that close to its deadline gets a last try.
_MIN_TIMEOUT = 0.05


class LeaseApi(Protocol):
    """The three calls of `CoordinationV1Api` that an election makes; tests pass a fake."""

    def read_namespaced_lease(
        self, name: str, namespace: str, *, _request_timeout: float
    ) -> k8s.V1Lease: ...

    def create_namespaced_lease(
        self, namespace: str, body: k8s.V1Lease, *, field_manager: str, _request_timeout: float
    ) -> k8s.V1Lease: ...

    def replace_namespaced_lease(
        self,
        name: str,
        namespace: str,
        body: k8s.V1Lease,
        *,
        field_manager: str,
        _request_timeout: float,
    ) -> k8s.V1Lease: ...


class Attempt(Enum):
    """What one try at acquiring or renewing the Lease found."""

    HELD = "held"  # the Lease is ours now
    TAKEN = "taken"  # another candidate holds a Lease that has not expired
    FAILED = "failed"  # an error, or a conflicting write: try again later


@dataclass(frozen=True, slots=True)
class _Record:
    holder: str
    duration: int
    acquired: datetime | None
    renewed: datetime | None
    transitions: int

    @classmethod
    def of(cls, lease: k8s.V1Lease) -> _Record:
        spec = lease.spec or k8s.V1LeaseSpec()
        return cls(
            holder=spec.holder_identity or "",
            duration=spec.lease_duration_seconds or 0,
            acquired=spec.acquire_time,
            renewed=spec.renew_time,
            transitions=spec.lease_transitions or 0,
        )


class _Failure(Exception):
    def __init__(self, operation: str, status: int | None, detail: str) -> None:
        super().__init__(f"{operation}: {status or ''} {detail}".strip())
        self.operation = operation
        self.status = status
        self.detail = detail


class LeaderElector:
    """Campaigns for one Lease; `run` blocks until `stop` is set.

    `identity` must be unique per process (the pod's name): two processes with one identity
    would both believe they lead. It needs `2 * renew_seconds < lease_seconds` and
    `retry_seconds <= renew_seconds`.
    """

    def __init__(
        self,
        api: k8s.ApiClient | LeaseApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15.0,
        renew_seconds: float = 5.0,
        retry_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not identity:
            raise ValueError("a leader election needs a non-empty identity")
        if not 0 < retry_seconds <= renew_seconds:
            raise ValueError("retry_seconds must be positive and at most renew_seconds")
        if not 2 * renew_seconds < lease_seconds:
            raise ValueError("lease_seconds must exceed twice renew_seconds")
        self._leases: LeaseApi = (
            k8s.CoordinationV1Api(api) if isinstance(api, k8s.ApiClient) else api
        )
        self.namespace = namespace
        self.name = name
        self.identity = identity
        # The Lease stores whole seconds; round up so we never promise less than asked.
        self.lease_seconds = float(math.ceil(lease_seconds))
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self.renew_deadline = self.lease_seconds - renew_seconds
        self._clock = clock
        self._leading = False
        self._lease: k8s.V1Lease | None = None
        self._observed: _Record | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def taken(self) -> bool:
        """Whether the last Lease read names another holder: after a step-down for that
        reason, the other holder acts already, and this replica must write nothing more."""
        observed = self._observed
        return observed is not None and observed.holder not in ("", self.identity)

    def run(
        self,
        stop: threading.Event,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
    ) -> None:
        """Campaign, lead and step down until `stop` is set; then release the Lease if held.

        `on_started` runs on this thread when the Lease is won and should return promptly (start
        the scheduler), since renewals wait for it. `on_stopped` runs when the Lease is lost or
        could not be renewed in time, and on `stop` while leading; after a loss the elector
        campaigns again. A process that prefers to exit on a loss, as client-go's users do,
        sets `stop` from `on_stopped`.
        """
        log.info(
            "lease.campaign",
            lease=f"{self.namespace}/{self.name}",
            identity=self.identity,
            lease_seconds=self.lease_seconds,
        )
        try:
            while not stop.is_set():
                stop.wait(self._step(on_started, on_stopped))
        finally:
            if self._leading and self._lease is not None:
                lease = self._lease
                self._step_down(on_stopped, "lease.stopping", quiet=True)
                self._release(lease)

    def try_acquire_or_renew(self) -> Attempt:
        """One attempt: renew our Lease, or take it if it is absent, released or expired."""
        started = self._clock()
        try:
            if self._leading and self._lease is not None:
                # Renew from our own last write, without a read: one request per renewal. A
                # conflict means someone else wrote; the read below finds out who.
                try:
                    return self._write(self._lease, started, ours=_Record.of(self._lease))
                except _Failure as exc:
                    if exc.status != 409:
                        raise
            lease = self._read()
            if lease is None:
                return self._create(started)
            record = self._observe(lease, started)
            if (
                record.holder
                and record.holder != self.identity
                and self._observed_at + record.duration > started
            ):
                return Attempt.TAKEN
            return self._write(
                lease, started, ours=record if record.holder == self.identity else None
            )
        except _Failure as exc:
            quiet = exc.status == 409
            (log.info if quiet else log.warning)(
                "lease.conflict" if quiet else "lease.error",
                operation=exc.operation,
                status=exc.status,
                error=exc.detail,
            )
            return Attempt.FAILED

    def _step(self, on_started: Callable[[], None], on_stopped: Callable[[], None]) -> float:
        """One attempt and what it means; returns how long to wait before the next one."""
        attempt = self.try_acquire_or_renew()
        if attempt is Attempt.HELD:
            if not self._leading:
                self._leading = True
                log.info("lease.acquired", identity=self.identity)
                on_started()
            return self.renew_seconds
        if not self._leading:
            return self.retry_seconds
        if attempt is Attempt.TAKEN:
            holder = self._observed.holder if self._observed else ""
            self._step_down(on_stopped, "lease.lost", holder=holder)
            return self.retry_seconds
        left = self._renewed_at + self.renew_deadline - self._clock()
        if left <= 0:
            self._step_down(on_stopped, "lease.renew_deadline", seconds=self.renew_deadline)
            return self.retry_seconds
        return min(self.retry_seconds, left)

    def _step_down(
        self, on_stopped: Callable[[], None], event: str, *, quiet: bool = False, **fields: object
    ) -> None:
        self._leading = False
        self._lease = None
        (log.info if quiet else log.warning)(event, identity=self.identity, **fields)
        on_stopped()

    def _release(self, lease: k8s.V1Lease) -> None:
        """Hand the Lease back, so a standby need not wait for it to expire.

        Written with the resourceVersion of our last renewal: if anyone wrote since, the Lease
        is no longer ours to release.
        """
        now = _micro_now()
        spec = k8s.V1LeaseSpec(
            holder_identity="",
            lease_duration_seconds=1,
            acquire_time=now,
            renew_time=now,
            lease_transitions=_Record.of(lease).transitions,
        )
        try:
            self._replace(lease.model_copy(update={"spec": spec}))
        except _Failure as exc:
            log.warning("lease.release_failed", status=exc.status, error=exc.detail)
            return
        log.info("lease.released", identity=self.identity)

    def _read(self) -> k8s.V1Lease | None:
        try:
            return self._call(
                "read",
                lambda timeout: self._leases.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=timeout
                ),
            )
        except _Failure as exc:
            if exc.status == 404:
                return None
            raise

    def _create(self, started: float) -> Attempt:
        now = _micro_now()
        body = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=self._spec(now, acquired=now, transitions=0),
        )
        created = self._call(
            "create",
            lambda timeout: self._leases.create_namespaced_lease(
                self.namespace, body, field_manager=FIELD_MANAGER, _request_timeout=timeout
            ),
        )
        return self._won(created, started)

    def _write(self, lease: k8s.V1Lease, started: float, *, ours: _Record | None) -> Attempt:
        """Renew (when `ours` is our current record) or take over `lease`, as read."""
        now = _micro_now()
        if ours is not None:
            spec = self._spec(now, acquired=ours.acquired or now, transitions=ours.transitions)
        else:
            previous = _Record.of(lease)
            spec = self._spec(now, acquired=now, transitions=previous.transitions + 1)
        written = self._replace(lease.model_copy(update={"spec": spec}))
        return self._won(written, started)

    def _replace(self, body: k8s.V1Lease) -> k8s.V1Lease:
        return self._call(
            "update",
            lambda timeout: self._leases.replace_namespaced_lease(
                self.name,
                self.namespace,
                body,
                field_manager=FIELD_MANAGER,
                _request_timeout=timeout,
            ),
        )

    def _won(self, lease: k8s.V1Lease, started: float) -> Attempt:
        self._lease = lease
        self._observe(lease, started)
        self._renewed_at = started
        return Attempt.HELD

    def _spec(self, now: datetime, *, acquired: datetime, transitions: int) -> k8s.V1LeaseSpec:
        return k8s.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=int(self.lease_seconds),
            acquire_time=acquired,
            renew_time=now,
            lease_transitions=transitions,
        )

    def _observe(self, lease: k8s.V1Lease, started: float) -> _Record:
        record = _Record.of(lease)
        if record != self._observed:
            if self._observed is None or record.holder != self._observed.holder:
                log.info("lease.holder", holder=record.holder or None)
            self._observed = record
            self._observed_at = started
        return record

    def _call(self, operation: str, call: Callable[[float], k8s.V1Lease]) -> k8s.V1Lease:
        """Make one request, with every client error turned into a `_Failure`."""
        try:
            return call(self._timeout(operation))
        except k8s.ApiException as exc:
            raise _Failure(operation, exc.status, str(exc.reason)) from exc
        # urllib3's errors (refused, reset, timed out), and a body the model cannot parse.
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise _Failure(operation, None, str(exc)) from exc

    def _timeout(self, operation: str) -> float:
        """A candidate waits up to a renewal period; a leader no longer than its deadline."""
        if not self._leading:
            return self.renew_seconds
        left = self._renewed_at + self.renew_deadline - self._clock()
        if left <= 0:
            raise _Failure(operation, None, "renew deadline passed")
        return max(_MIN_TIMEOUT, min(self.renew_seconds, left))


def _micro_now() -> datetime:
    """Now in UTC, never on a whole second.

    The client writes datetimes with `isoformat()`, which drops the fraction when it is zero;
    the API server parses a MicroTime with exactly six fraction digits and would reject it.
    """
    now = datetime.now(UTC)
    return now if now.microsecond else now.replace(microsecond=1)
