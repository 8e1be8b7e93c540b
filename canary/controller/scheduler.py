"""APScheduler wiring: one job per Canary at its check interval, and at once on a spec change.

A sync job lists the store every `resync` seconds and reconciles the job table with it: a new
Canary gets a job that runs now, a changed spec (new generation or revision) or a deletion
begun re-times its job and runs it now, a Canary gone loses its job. A sweep job removes every
expired fault every `sweep_every` seconds, whichever Canary left it (a fault outlives its
experiment only until then, even with its Canary gone). A tick may ask to run again sooner
(`Decision.wake_after`, while a new split propagates); the job's next run is moved up for it.
Each job runs one tick at a time (max_instances=1), and a late tick is merged, not replayed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from canary.controller.reconcile import Reconciler
from canary.engine import revision
from canary.errors import CanaryError
from canary.ports import CanaryKey, StoredCanary

log = structlog.get_logger("canary.scheduler")

# While a Canary is invalid, look again at this pace for the fix (a new spec, a created object).
INVALID_RECHECK = 5.0
# How often expired faults are swept: a cache read, and a delete for each one found.
SWEEP_EVERY = 5.0
# A `now` past every expiry: a stopping leader's sweep takes every fault off.
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Scheduled:
    fingerprint: str
    interval: float


class Controller:
    def __init__(
        self, reconciler: Reconciler, *, resync: float = 1.0, sweep_every: float = SWEEP_EVERY
    ) -> None:
        self.reconciler = reconciler
        self.resync = resync
        self.sweep_every = sweep_every
        self._jobs: dict[CanaryKey, _Scheduled] = {}
        self._lock = threading.Lock()
        # APScheduler logs every run at INFO; our own tick log says more, once. It also warns
        # each time a tick is still running when its next one is due: that skip is the design
        # (one tick at a time per Canary, the late one merged), and under load it would be
        # most of the log. Job failures still show: a tick catches its own, and logs them.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        self.sweep_faults()
        self.scheduler.add_job(
            self.sync, "interval", seconds=self.resync, id="sync", next_run_time=_now()
        )
        self.scheduler.add_job(
            self.sweep_faults, "interval", seconds=self.sweep_every, id="sweep-faults"
        )
        self.scheduler.start()
        log.info("controller.started", resync=self.resync, sweep_every=self.sweep_every)

    def sweep_faults(self, *, until: datetime | None = None) -> None:
        """Removes every fault expired by `until` (now by default), whichever Canary left it.

        Run before the first tick, then every `sweep_every` seconds: a controller that died
        during an experiment left its fault in place, and a Canary gone without its finalizer
        (removed by hand) leaves one no tick would ever clear. One that failed to go is logged
        and tried again at the next sweep; a Canary whose status still holds the experiment
        clears it on its own next tick too.
        """
        try:
            cleared = self.reconciler.router.sweep_faults(until or self.reconciler.clock.now())
        except CanaryError as exc:
            log.warning("faults.sweep_failed", error=str(exc))
            return
        for fault in cleared:
            log.warning("fault.expired_cleared", fault=fault)

    def stop(self, *, clear_faults: bool = False) -> None:
        """Stops ticking (a tick under way finishes first); with `clear_faults`, then takes
        every fault off, since no tick of this controller will hold or end them any more. A
        leader that hands over does so: its successor injects a still-running experiment's
        fault again, so the fault is off for the handover only, and one that has no successor
        leaves none behind."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if clear_faults:
            self.sweep_faults(until=_END_OF_TIME)
        log.info("controller.stopped", faults_cleared=clear_faults)

    def sync(self) -> None:
        stored = self.reconciler.store.canaries()
        seen = {canary.key for canary in stored}
        with self._lock:
            for canary in stored:
                self._schedule(canary)
            for gone in [key for key in self._jobs if key not in seen]:
                self._jobs.pop(gone)
                self._remove(gone)
                log.info("canary.removed", canary=str(gone))

    def tick(self, key: CanaryKey) -> None:
        decision = self.reconciler.tick(key)
        if decision is not None and decision.wake_after is not None:
            soon = _now() + timedelta(seconds=decision.wake_after)
            job = self.scheduler.get_job(_job_id(key))
            if job is not None and job.next_run_time is not None and job.next_run_time > soon:
                job.modify(next_run_time=soon)

    def _schedule(self, canary: StoredCanary) -> None:
        wanted = _Scheduled(_fingerprint(canary), _interval(canary))
        current = self._jobs.get(canary.key)
        if current == wanted:
            return
        self._jobs[canary.key] = wanted
        self._remove(canary.key)
        self.scheduler.add_job(
            self.tick,
            "interval",
            args=(canary.key,),
            seconds=wanted.interval,
            id=_job_id(canary.key),
            next_run_time=_now(),
        )
        log.info(
            "canary.scheduled" if current is None else "canary.rescheduled",
            canary=str(canary.key),
            every=wanted.interval,
        )

    def _remove(self, key: CanaryKey) -> None:
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(_job_id(key))


def _job_id(key: CanaryKey) -> str:
    return f"canary:{key}"


def _fingerprint(canary: StoredCanary) -> str:
    # A deletion begun is a change to act on at once, like a new spec.
    deleting = "deleting:" if canary.deleting_since is not None else ""
    if canary.spec is None:
        return deleting + "invalid:" + "|".join(canary.problems)
    return f"{deleting}{canary.generation}:{revision.of(canary.spec)}"


def _interval(canary: StoredCanary) -> float:
    if canary.spec is None:
        return INVALID_RECHECK
    return canary.spec.analysis.check_interval_seconds


def _now() -> datetime:
    return datetime.now(UTC)
