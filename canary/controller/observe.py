"""Observe: gather what one tick of one Canary needs, and only that.

`engine.wanted` names the checks that are due; everything else (the live split, the target's
readiness and pod template) is read on every tick because it is cheap (the cache) and every
phase depends on it. Each check's evidence comes through its source's port (see sources.py); a
check that compares with stable gets each side's counts over an exact window (counts.py).
Problems that make the Canary un-actionable are collected, not raised, so the engine can record
them all as one InvalidSpec condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from canary.api import builtins
from canary.api.metrics import MetricCheck
from canary.api.spec import CanarySpec
from canary.controller import chaos_probe, counts, hooks, preflight, queries
from canary.controller.sources import Evidence, Sources
from canary.engine import revision
from canary.engine.observation import (
    ActiveFault,
    ChaosReading,
    CountsReading,
    GateResult,
    Measurement,
    Observation,
    TargetState,
    Traffic,
)
from canary.engine.wanted import wanted
from canary.errors import CanaryError, InvalidSpec
from canary.ports import (
    CanaryKey,
    Owner,
    Router,
    RouteRef,
    Store,
    StoredCanary,
    SubsetRef,
    WebhookRequest,
    Workloads,
)


def route_of(
    key: CanaryKey, spec: CanarySpec, stable_subset: str = "", *, uid: str = ""
) -> RouteRef:
    """The managed route; `stable_subset` is the subset the rollout treats as stable (the
    status's, which may not be spec.stable's once a release has been promoted); `uid`, the
    Canary's, makes it the owner of the faults injected for it."""
    stable = SubsetRef(spec.stable.subset, tuple(sorted((spec.stable.labels or {}).items())))
    if stable_subset and stable_subset != spec.stable.subset:
        # A subset the route already serves: it is in the DestinationRule, labels and all.
        stable = SubsetRef(stable_subset)
    canary = SubsetRef(spec.canary.subset, tuple(sorted((spec.canary.labels or {}).items())))
    return RouteRef(
        namespace=key.namespace,
        virtual_service=spec.service.virtual_service_name,
        host=spec.service.host,
        route=spec.service.route,
        destination_rule=spec.service.destination_rule_name,
        subsets=(stable, canary),
        owner=Owner(key.name, uid) if uid else None,
        virtual_service_namespace=spec.service.virtual_service_namespace,
        destination_rule_namespace=spec.service.destination_rule_namespace,
    )


def observe(
    stored: StoredCanary,
    spec: CanarySpec,
    now: datetime,
    *,
    route: RouteRef,
    store: Store,
    workloads: Workloads,
    router: Router,
    sources: Sources,
    query_set: builtins.QuerySet,
    chat_problems: tuple[str, ...] = (),
    preflight_ports: preflight.Preflight | None = None,
) -> Observation:
    """Raises canary.errors.Unavailable when a backend the tick cannot do without is down.
    `chat_problems`: the chat publisher's lines for this Canary (never a reason to hold it);
    `preflight_ports`: what preflight can ask here (None: no preflight in this controller)."""
    key, status = stored.key, stored.status
    problems: list[str] = []
    traffic: Traffic | None = None
    try:
        traffic = router.read(route)
        # Problems of a route that could still be read: the weights are known, so a Canary
        # made Invalid (or deleted) can still be sent back to stable.
        problems.extend(traffic.problems)
    except InvalidSpec as exc:
        problems.extend(exc.problems)
    faults: tuple[ActiveFault, ...] | None = ()
    if spec.chaos or status.chaos or stored.chaos_request is not None or stored.deleting_since:
        faults = _faults(router, route)
    target: TargetState | None = None
    if spec.canary.target_ref is not None:
        try:
            target = workloads.target(key.namespace, spec.canary.target_ref)
        except InvalidSpec as exc:
            problems.extend(f"spec.canary.{problem}" for problem in exc.problems)
    target_revision = "" if target is None else target.template_revision
    current = revision.of(spec, target_revision=target_revision)
    # Every check's source is resolved on every tick, not only when the check is due: a missing
    # template or Secret makes the Canary Invalid before its first write, and keeps it so.
    resolved: dict[str, tuple[queries.ResolvedQuery, Evidence]] = {}
    stable_subset = route.subsets[0].name if route.subsets else ""
    for metric in spec.analysis.metrics:
        try:
            query = queries.resolve(
                key, spec, metric, store=store, query_set=query_set, stable_subset=stable_subset
            )
            resolved[metric.name] = (query, sources.metrics_for(query.template))
        except InvalidSpec as exc:
            problems.extend(exc.problems)
    asked: dict[str, WebhookRequest] = {}
    for hook in spec.analysis.webhooks:
        try:
            asked[hook.name] = hooks.request(
                key,
                hook,
                secrets=sources.secrets,
                phase=str(status.phase or ""),
                checksum=current,
                now=now,
            )
        except InvalidSpec as exc:
            where = f"spec.analysis.webhooks[{hook.name}].headers"
            problems.extend(f"{where}: {problem}" for problem in exc.problems)
    due = wanted(spec, status, now)
    measurements: dict[str, Measurement] = {}
    comparisons: dict[str, CountsReading] = {}
    gates: dict[str, GateResult] = {}
    if not problems:
        tick = counts.Tick(status, now, query_set)
        measurements, comparisons = _measure(due.metrics, resolved, tick)
        for hook in due.webhooks:
            gates[hook.name] = sources.webhooks.call(asked[hook.name])
    checked = None
    if (
        preflight_ports is not None
        and not problems
        and preflight.wanted(status, current, command_pending=stored.command is not None)
    ):
        context = preflight.Context(
            key, spec, route, traffic, preflight_ports, store, sources, query_set
        )
        checked = preflight.gather(context)
    chaos: dict[str, ChaosReading] = {}
    for window in due.chaos:
        chaos[window.name] = chaos_probe.read(
            key, spec, window, provider=sources.builtin, query_set=query_set
        )
    return Observation(
        revision=current,
        traffic=traffic,
        target_ready=None if target is None else target.ready,
        target_revision=target_revision,
        generation=stored.generation,
        measurements=measurements,
        comparisons=comparisons,
        gates=gates,
        faults=faults,
        chaos=chaos,
        chaos_request=stored.chaos_request,
        command=stored.command,
        deleting_since=stored.deleting_since,
        problems=tuple(problems),
        chat_problems=chat_problems,
        preflight=checked,
    )


def _measure(
    metrics: tuple[MetricCheck, ...],
    resolved: Mapping[str, tuple[queries.ResolvedQuery, Evidence]],
    tick: counts.Tick,
) -> tuple[dict[str, Measurement], dict[str, CountsReading]]:
    """The due checks' values, and the comparing checks' counts."""
    measurements: dict[str, Measurement] = {}
    comparisons: dict[str, CountsReading] = {}
    for metric in metrics:
        query, source = resolved[metric.name]
        # A compare-only check's query is a count, not a value to judge.
        if metric.compare is None or metric.threshold_range is not None:
            measurements[metric.name] = source.measure(query, tick.now)
        reading = counts.due(metric, query, source, tick)
        if reading is not None:
            comparisons[metric.name] = reading
    return measurements, comparisons


def _faults(router: Router, route: RouteRef) -> tuple[ActiveFault, ...] | None:
    # Unknown rather than none: the engine then clears blindly where it must (a rollback) and
    # never takes a missing answer for "no fault in place".
    try:
        return router.faults(route)
    except CanaryError:
        return None
