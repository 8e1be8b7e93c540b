"""Before the demo starts its controller: wait, a few seconds at most, until the mesh can answer
what the controller's preflight will ask.

The demo's mesh is born with its Canary: no route has been pushed to the client-side Envoy, no
request has reached the stable version, and Prometheus has not scraped yet. Started at once, the
controller's preflight would rightly find no series for the stable subset and hold the first
step with a `PreflightFailed` Event, a second later passing: true, but it makes a healthy demo
look broken at its start. So the demo first pushes the scenario's route (by reading it through
the controller's own router, which publishes what the store holds), then gathers the very items
the controller will gather, through the same ports, until they all pass.

Preflight itself is untouched: the wait only decides when the controller starts. When the time
runs out the demo says which items still fail and starts the controller anyway, whose preflight
then holds the rollout and says what to fix, as it would in a cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from canary.controller import observe, preflight
from canary.controller.reconcile import Reconciler
from canary.engine.preflight import PreflightItem
from canary.errors import CanaryError, InvalidSpec
from canary.ports import CanaryKey

# Prometheus waits up to 5 s before its first scrape (localmesh/mesh.py), then scrapes every
# second: this leaves room for that and one more scrape, and no more.
LIMIT_S = 8.0
POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class Warmup:
    """How the wait ended: `items` are the preflight items as last gathered (none when the
    route was never served), `reason` says why nothing was waited for."""

    ready: bool
    seconds: float
    items: tuple[PreflightItem, ...] = ()
    reason: str = ""

    def line(self) -> str:
        if self.reason:
            return f"mesh: {self.reason}"
        if self.ready:
            return f"mesh ready for preflight after {self.seconds:.1f}s: the route is served" + (
                f", {_seen(self.items)}" if self.items else ""
            )
        failing = "; ".join(item.line() for item in self.items if not item.passing)
        return (
            f"mesh not ready for preflight after {self.seconds:.1f}s "
            f"({failing or 'the route is not served yet'}): starting the controller, whose "
            "preflight holds the rollout until it is"
        )


def wait(
    reconciler: Reconciler, key: CanaryKey, *, limit: float = LIMIT_S, poll: float = POLL_S
) -> Warmup:
    """Gather the Canary's preflight items through the reconciler's own ports until they pass or
    `limit` seconds have gone by; every call to a backend is one the controller makes too."""
    started = time.monotonic()
    stored = reconciler.store.canary(key)
    if stored is None or stored.spec is None:
        # The controller reports what is wrong with it; there is nothing to wait for.
        return Warmup(False, 0.0, reason=f"Canary {key} cannot be read; not waiting for the mesh")
    ports = reconciler.preflight
    if ports is None:
        return Warmup(True, 0.0, reason="no preflight in this controller; not waiting")
    if stored.spec.canary.target_ref is not None:
        try:
            reconciler.workloads.target(key.namespace, stored.spec.canary.target_ref)
        except InvalidSpec as exc:
            # The controller makes such a Canary Invalid and never runs its preflight.
            said = "; ".join(f"spec.canary.{problem}" for problem in exc.problems)
            return Warmup(False, 0.0, reason=f"not waiting: {said}")
    route = observe.route_of(key, stored.spec, stored.status.stable_subset, uid=stored.uid)
    items: tuple[PreflightItem, ...] = ()
    # Bounded in count as well as in time, whatever a backend's answers take.
    for _ in range(int(limit / poll) + 1):
        try:
            # The first read publishes the store's objects to the mesh; later ones only look.
            traffic = reconciler.router.read(route)
        except CanaryError as exc:
            return Warmup(False, time.monotonic() - started, reason=f"not waiting: {exc}")
        if traffic.applied:
            context = preflight.Context(
                key,
                stored.spec,
                route,
                traffic,
                ports,
                reconciler.store,
                reconciler.sources,
                reconciler.query_set,
            )
            try:
                items = preflight.gather(context)
            except CanaryError:
                # A backend not up yet (the controller would retry its tick): asked again.
                items = ()
            if items and all(item.passing for item in items):
                return Warmup(True, time.monotonic() - started, items)
        left = limit - (time.monotonic() - started)
        if left <= 0:
            break
        time.sleep(min(poll, left))
    return Warmup(False, time.monotonic() - started, items)


def _seen(items: tuple[PreflightItem, ...]) -> str:
    return ", ".join(f"{item.name} {item.state}" for item in items)
