"""Observe: gather what one tick of one Canary needs, and only that.

`engine.wanted` names the checks that are due; everything else (the live split, the target's
readiness) is read on every tick because it is cheap and every phase depends on it. Problems
that make the Canary un-actionable are collected, not raised, so the engine can record them all
as one InvalidSpec condition.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from canary.api import builtins
from canary.api.chaos import ChaosRequest
from canary.api.spec import CanarySpec, Webhook
from canary.api.status import CanaryStatus
from canary.controller import chaos_probe, queries
from canary.engine import revision
from canary.engine.observation import (
    ActiveFault,
    ChaosReading,
    GateResult,
    Measurement,
    Observation,
    Traffic,
)
from canary.engine.wanted import wanted
from canary.errors import CanaryError, InvalidSpec
from canary.ports import CanaryKey, MetricsProvider, Router, RouteRef, Store, SubsetRef

# A provider per address: the controller's own Prometheus for built-ins, a template's otherwise.
ProviderFor = Callable[[str | None], MetricsProvider]
GateCaller = Callable[[CanaryKey, Webhook, str], GateResult]


def route_of(key: CanaryKey, spec: CanarySpec) -> RouteRef:
    return RouteRef(
        namespace=key.namespace,
        virtual_service=spec.service.virtual_service_name,
        host=spec.service.host,
        route=spec.service.route,
        destination_rule=spec.service.destination_rule_name,
        subsets=tuple(
            SubsetRef(variant.subset, tuple(sorted((variant.labels or {}).items())))
            for variant in (spec.stable, spec.canary)
        ),
    )


def observe(
    key: CanaryKey,
    spec: CanarySpec,
    status: CanaryStatus,
    now: datetime,
    *,
    route: RouteRef,
    store: Store,
    router: Router,
    provider_for: ProviderFor,
    call_gate: GateCaller,
    query_set: builtins.QuerySet,
    chaos_request: ChaosRequest | None = None,
) -> Observation:
    """Raises canary.errors.Unavailable when a backend the tick cannot do without is down."""
    problems: list[str] = []
    traffic: Traffic | None = None
    try:
        traffic = router.read(route)
    except InvalidSpec as exc:
        problems.extend(exc.problems)
    faults: tuple[ActiveFault, ...] | None = ()
    if spec.chaos or status.chaos or chaos_request is not None:
        faults = _faults(router, route)
    ready: bool | None = None
    if spec.canary.target_ref is not None:
        try:
            ready = store.target_ready(key.namespace, spec.canary.target_ref)
        except InvalidSpec as exc:
            problems.extend(exc.problems)
    due = wanted(spec, status, now)
    measurements: dict[str, Measurement] = {}
    for metric in due.metrics:
        try:
            resolved = queries.resolve(key, spec, metric, store=store, query_set=query_set)
        except InvalidSpec as exc:
            problems.extend(exc.problems)
            continue
        provider = provider_for(resolved.address)
        measurements[metric.name] = provider.measure(
            resolved.query, requests_query=resolved.requests_query
        )
    gates = {hook.name: call_gate(key, hook, str(status.phase or "")) for hook in due.webhooks}
    chaos: dict[str, ChaosReading] = {}
    for window in due.chaos:
        chaos[window.name] = chaos_probe.read(
            key, spec, window, provider=provider_for(None), query_set=query_set
        )
    return Observation(
        revision=revision.of(spec),
        traffic=traffic,
        target_ready=ready,
        measurements=measurements,
        gates=gates,
        faults=faults,
        chaos=chaos,
        chaos_request=chaos_request,
        problems=tuple(problems),
    )


def _faults(router: Router, route: RouteRef) -> tuple[ActiveFault, ...] | None:
    # Unknown rather than none: the engine then clears blindly where it must (a rollback) and
    # never takes a missing answer for "no fault in place".
    try:
        return router.faults(route)
    except CanaryError:
        return None
