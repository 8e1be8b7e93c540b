"""The controller's own figures for Prometheus: where each rollout stands, how checks and ticks go.

Everything lives on a private `CollectorRegistry`, not the process-wide default, so every test
(and every controller in one process, as the benchmarks run them) gets its own figures, and
`/metrics` shows only ours.

A rollout's series carry `namespace` and `name`. `canary_phase` follows kube-state-metrics'
`kube_pod_status_phase`: one series per phase, 1 for the current one and 0 for the others, so
`canary_phase{phase="Failed"} == 1` alerts without a gap when the phase changes. A deleted
Canary's series are dropped by `forget`, else a dashboard would show it at its last weight
forever. Label values are checked against closed sets, because a typo would quietly start a new
series that no dashboard looks at.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from canary.api.status import Phase

CHECK_RESULTS = frozenset({"passed", "failed", "no_data"})
CHAOS_RESULTS = frozenset({"passed", "failed"})
FAILED_TICK_OUTCOMES = frozenset({"unavailable", "error"})
NOTIFICATION_RESULTS = frozenset({"sent", "retried", "dropped"})
PHASES = tuple(str(phase) for phase in Phase)
# A tick is a store read, maybe a few queries and one patch: from about a millisecond against
# the local mesh to seconds when a Prometheus query runs to its timeout.
TICK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_ROLLOUT = ("namespace", "name")


class Telemetry:
    """Records ticks and leadership; `registry` is what `/metrics` serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._weight = Gauge(
            "canary_weight",
            "The canary's share of traffic, in percent.",
            _ROLLOUT,
            registry=self.registry,
        )
        self._phase = Gauge(
            "canary_phase",
            "1 for the rollout's current phase, 0 for the others.",
            (*_ROLLOUT, "phase"),
            registry=self.registry,
        )
        self._failed_checks = Gauge(
            "canary_failed_checks",
            "Failed checks counted against the current rollout.",
            _ROLLOUT,
            registry=self.registry,
        )
        self._checks = Counter(
            "canary_checks",
            "Checks judged, by check and result (passed, failed, no_data).",
            (*_ROLLOUT, "check", "result"),
            registry=self.registry,
        )
        self._tick_seconds = Histogram(
            "canary_tick_seconds",
            "How long one tick (observe, decide, act) took.",
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self._ticks = Counter(
            "canary_ticks",
            "Ticks by outcome: ok, unavailable (a backend did not answer) or error.",
            ("outcome",),
            registry=self.registry,
        )
        self._fault = Gauge(
            "canary_fault_injected",
            "1 while an experiment's fault is in place on the canary, else 0.",
            _ROLLOUT,
            registry=self.registry,
        )
        self._experiments = Counter(
            "canary_chaos_experiments",
            "Chaos experiments judged, by result (passed, failed).",
            (*_ROLLOUT, "result"),
            registry=self.registry,
        )
        self._leader = Gauge(
            "canary_leader",
            "1 while this replica holds the leader Lease and acts, else 0.",
            registry=self.registry,
        )
        self._notifications = Counter(
            "canary_notifications",
            "Chat messages by ChatProvider (namespace/name) and result: sent, retried (a try "
            "that failed and will be tried again), dropped (given up on).",
            ("provider", "result"),
            registry=self.registry,
        )
        # Present from the start, so rate() sees the first error rather than a new series.
        for outcome in ("ok", *sorted(FAILED_TICK_OUTCOMES)):
            self._ticks.labels(outcome)
        # Which check series each rollout has, so forget() can drop them all.
        self._check_labels: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def tick_done(
        self,
        namespace: str,
        name: str,
        *,
        phase: str,
        weight: int,
        failed_checks: int,
        checks: Sequence[tuple[str, str]],
        seconds: float,
    ) -> None:
        """A tick that decided: the status it left, and the checks it judged as (check, result).

        `phase` is empty while the Canary has none yet. Each check passed here is counted once,
        so pass only those judged in this tick, not the status' latest results again.
        """
        if phase and phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        unknown = sorted({result for _, result in checks} - CHECK_RESULTS)
        if unknown:
            raise ValueError(f"unknown check result {unknown}; expected {sorted(CHECK_RESULTS)}")
        key = (namespace, name)
        with self._lock:
            self._weight.labels(namespace, name).set(weight)
            self._failed_checks.labels(namespace, name).set(failed_checks)
            for each in PHASES:
                self._phase.labels(namespace, name, each).set(1 if each == phase else 0)
            seen = self._check_labels.setdefault(key, set())
            for check, result in checks:
                self._checks.labels(namespace, name, check, result).inc()
                seen.add((check, result))
        self._tick_seconds.observe(seconds)
        self._ticks.labels("ok").inc()

    def chaos(
        self, namespace: str, name: str, *, fault_injected: bool, judged: Sequence[str]
    ) -> None:
        """Whether a fault is in place now, and the results of experiments judged this tick."""
        unknown = sorted(set(judged) - CHAOS_RESULTS)
        if unknown:
            raise ValueError(f"unknown chaos result {unknown}; expected {sorted(CHAOS_RESULTS)}")
        with self._lock:
            self._fault.labels(namespace, name).set(1 if fault_injected else 0)
            for result in judged:
                self._experiments.labels(namespace, name, result).inc()

    def tick_failed(self, outcome: str, seconds: float) -> None:
        """A tick that could not decide: `unavailable` (a backend was down) or `error`."""
        if outcome not in FAILED_TICK_OUTCOMES:
            raise ValueError(f"unknown tick outcome {outcome!r}; expected unavailable or error")
        self._tick_seconds.observe(seconds)
        self._ticks.labels(outcome).inc()

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted Canary."""
        with self._lock:
            checks = self._check_labels.pop((namespace, name), set())
            # Older prometheus_client releases, which pyproject allows, raise KeyError for a label
            # set never used.
            with contextlib.suppress(KeyError):
                self._weight.remove(namespace, name)
            with contextlib.suppress(KeyError):
                self._failed_checks.remove(namespace, name)
            with contextlib.suppress(KeyError):
                self._fault.remove(namespace, name)
            for result in CHAOS_RESULTS:
                with contextlib.suppress(KeyError):
                    self._experiments.remove(namespace, name, result)
            for each in PHASES:
                with contextlib.suppress(KeyError):
                    self._phase.remove(namespace, name, each)
            for check, result in checks:
                with contextlib.suppress(KeyError):
                    self._checks.remove(namespace, name, check, result)

    def notification(self, provider: str, result: str) -> None:
        """One chat message's outcome (the chat outbox calls it from its worker thread)."""
        if result not in NOTIFICATION_RESULTS:
            raise ValueError(
                f"unknown notification result {result!r}; expected {sorted(NOTIFICATION_RESULTS)}"
            )
        self._notifications.labels(provider, result).inc()

    def set_leader(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)
