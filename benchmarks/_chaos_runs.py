"""A chaos rollout as the data plane lived it: when the fault bit, when a canary host went out,
and what users saw in exactly the seconds of the fault.

The watcher runs beside `_mesh_runs.run` (its `watch` hook). It polls the Canary's status until
the experiment shows Running, then, every POLL_S, the admin stats of two kinds of Envoy:

- the canary's inbound Envoys, `fault.aborts_injected`: the first abort they served is the
  moment the fault really reached the data plane (the status's startedAt is written before
  the fault, so it is the controller's intention, not the fault's effect);
- the client-side Envoy, `outlier_detection.ejections_enforced_total` of the canary subset's
  cluster: the first poll where the counter rose is the first ejection. The counter is read
  rather than `ejections_active`, because a counter cannot rise and fall back between two
  polls. Polling the admin port is chosen over the Prometheus samples (the demo's `ejected`
  series) because those come once per scrape, a second apart at best and later by however
  long the scrape and query take, while ten admin reads a second put the ejection within
  POLL_S plus one admin round trip (a few ms) of when Envoy counted it.

It stops once the fault has been cleared for LINGER_S, or at the latest LIMIT_S after the
experiment started, or when its `with` block ends, whichever is first.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import _mesh_runs

from canary.api.status import ChaosResult
from canary.localmesh import loadgen
from canary.localmesh.mesh import LocalMesh
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey

POLL_S = 0.1
# After the fault is cleared, an ejection counted late (or an abort still in flight) shows.
LINGER_S = 2.0
LIMIT_S = 60.0
ADMIN_TIMEOUT_S = 1.0
ENFORCED = "outlier_detection.ejections_enforced_total"
ACTIVE = "outlier_detection.ejections_active"
ABORTS = "fault.aborts_injected"


@dataclass(slots=True)
class Seen:
    """What the watcher saw, as wall-clock moments (the status's clock is the same one)."""

    started_at: datetime | None = None
    fault_served_at: datetime | None = None
    ejected_at: datetime | None = None
    # False when the client-side Envoy has no outlier-detection stats for the canary cluster:
    # Envoy keeps them only for a cluster that has outlier detection configured.
    has_outlier_stats: bool = False
    ejections_active_max: int = 0
    polls: int = 0
    # The longest gap between two stats polls: the real resolution on a busy machine.
    poll_gap_max_s: float = 0.0


@dataclass(slots=True)
class Watcher:
    key: CanaryKey
    experiment: str
    canary_subset: str
    seen: Seen = field(default_factory=Seen)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def watching(self, mesh: LocalMesh, store: LocalStore) -> Iterator[Seen]:
        thread = threading.Thread(
            target=self._watch, args=(mesh, store), name="chaos-watch", daemon=True
        )
        thread.start()
        try:
            yield self.seen
        finally:
            self._stop.set()
            thread.join(timeout=5.0)

    def _watch(self, mesh: LocalMesh, store: LocalStore) -> None:
        result = self._wait_running(store)
        if result is None:
            return
        self.seen.started_at = result.started_at
        cluster = f"|{self.canary_subset}|{mesh.host}."
        inbound = [i.inbound.admin_url for i in mesh.instances if i.version == self.canary_subset]
        deadline = time.monotonic() + LIMIT_S
        enforced_before: int | None = None
        last_poll: float | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            polled = time.monotonic()
            at = datetime.now(UTC)
            if last_poll is not None:
                self.seen.poll_gap_max_s = max(self.seen.poll_gap_max_s, polled - last_poll)
            last_poll = polled
            self.seen.polls += 1
            if self.seen.fault_served_at is None and _aborts(inbound) > 0:
                self.seen.fault_served_at = at
            client = _stats(mesh.admin_url, "outlier_detection")
            enforced = _cluster_stat(client, cluster, ENFORCED)
            if enforced is not None:
                self.seen.has_outlier_stats = True
                if enforced_before is None:
                    enforced_before = enforced
                elif self.seen.ejected_at is None and enforced > enforced_before:
                    self.seen.ejected_at = at
            active = _cluster_stat(client, cluster, ACTIVE) or 0
            self.seen.ejections_active_max = max(self.seen.ejections_active_max, active)
            if self._over(store):
                return
            self._stop.wait(max(0.0, POLL_S - (time.monotonic() - polled)))

    def _wait_running(self, store: LocalStore) -> ChaosResult | None:
        while not self._stop.wait(POLL_S):
            for result in store.status(self.key).chaos:
                if result.name == self.experiment:
                    return result
        return None

    def _over(self, store: LocalStore) -> bool:
        result = next((r for r in store.status(self.key).chaos if r.name == self.experiment), None)
        ended = None if result is None else result.ended_at
        return ended is not None and datetime.now(UTC) > ended + timedelta(seconds=LINGER_S)


def _stats(admin_url: str, pattern: str) -> dict[str, int]:
    url = f"{admin_url.rstrip('/')}/stats?filter={pattern}"
    try:
        with urllib.request.urlopen(url, timeout=ADMIN_TIMEOUT_S) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        # A missed poll only lowers the resolution; poll_gap_max_s shows by how much.
        return {}
    stats: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(": ")
        with contextlib.suppress(ValueError):
            stats[name] = int(value)
    return stats


def _cluster_stat(stats: dict[str, int], cluster: str, suffix: str) -> int | None:
    found = [v for name, v in stats.items() if cluster in name and name.endswith(suffix)]
    return sum(found) if found else None


def _aborts(admin_urls: list[str]) -> int:
    return sum(
        value
        for url in admin_urls
        for name, value in _stats(url, "aborts_injected").items()
        if name.endswith(ABORTS)
    )


@dataclass(frozen=True, slots=True)
class Users:
    """What the load generator's users saw over whole seconds [first, last] of its clock."""

    first: int | None
    last: int | None
    requests: int = 0
    failed: int = 0
    no_response: int = 0
    # The canary's requests: answered by it, or failed without a version while only the
    # canary was faulted (its inbound Envoy's injected aborts carry no version).
    canary_requests: int = 0
    canary_failed: int = 0

    @property
    def seconds(self) -> int:
        return 0 if self.first is None or self.last is None else self.last - self.first + 1

    @property
    def success_rate(self) -> float | None:
        return None if not self.requests else 100 * (1 - self.failed / self.requests)

    @property
    def canary_failure_share(self) -> float | None:
        """Of all failed requests, the share that were the canary's."""
        return None if not self.failed else 100 * self.canary_failed / self.failed

    @property
    def canary_failure_rate(self) -> float | None:
        return None if not self.canary_requests else 100 * self.canary_failed / self.canary_requests


def users(
    rollout: _mesh_runs.Rollout, start: datetime, end: datetime, *, canary_version: str
) -> Users:
    """Counts over the load seconds lying wholly within [start, end]: a second cut by either
    edge held requests from outside the window, and would water the figures down."""
    first = int(-(-rollout.load_second(start) // 1))
    last = int(rollout.load_second(end) // 1) - 1
    if last < first:
        return Users(None, None)
    counts: Counter[str] = Counter()
    for second in range(first, last + 1):
        for outcome, count in rollout.snapshot.per_second.get(second, {}).items():
            counts["requests"] += count
            failed = outcome.status >= 500 or outcome.status == loadgen.NO_RESPONSE
            # No answer at all (status 0) says nothing of who failed, so it is nobody's.
            canary = outcome.version == canary_version or (
                outcome.status >= 500 and outcome.version == loadgen.UNKNOWN_VERSION
            )
            counts["failed"] += count * failed
            counts["no_response"] += count * (outcome.status == loadgen.NO_RESPONSE)
            counts["canary_requests"] += count * canary
            counts["canary_failed"] += count * (canary and failed)
    return Users(first, last, **counts)
