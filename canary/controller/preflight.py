"""Gathering the preflight items, each through its port; engine/preflight.py judges them.

Gathered only while a rollout is about to start (`wanted`), never on a tick past its first step.
Each item is one function of the `Context` in `ITEMS`; adding one is one function and one line
there (as `mtls_pairings` was: `api/mtls.py` judges, the `TlsPolicies` port reads). Nothing is
guessed: a question that could not be answered is `unknown`, which holds the rollout like a
failure, and one this controller has no way to ask is `skipped` with the reason in its line.

The callers' proxies are asked only where the controller can see them (`--envoy-admin`; in a
cluster it usually cannot). Without any, "callers' proxies" and "chaos stats" are skipped and
pass: the issue asks for them "where it can see them", and holding every rollout of a controller
that cannot see a proxy would make preflight a switch to turn off rather than a check. The line
says "not checked", so nobody reads it as a pass of the proxies themselves.

A subset with no ready pod passes the sidecar item with a line saying there was nothing to
check: the item vouches for the pods that serve (a canary without ready pods is held by the
target's readiness where the Canary names its Deployment; without one, nothing here can tell
an empty subset from one still starting).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from canary.api import builtins, istio, mtls, templating
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, MeasurementKind, Phase
from canary.controller import queries, series
from canary.controller.sources import PromQL, Sources
from canary.engine import preflight
from canary.engine.observation import Traffic
from canary.engine.preflight import ItemState, PreflightItem
from canary.errors import CanaryError, InvalidSpec
from canary.ports import CanaryKey, Pods, Proxies, RouteRef, Store, TlsObjects, TlsPolicies

SIDECAR_FIX = (
    "enable sidecar injection for the namespace (label istio-injection=enabled or "
    'istio.io/rev) or the pod template (sidecar.istio.io/inject: "true"), then restart the pods'
)


@dataclass(frozen=True, slots=True)
class Preflight:
    """What preflight can ask in this controller: None where it has no such port."""

    pods: Pods | None = None
    proxies: Proxies | None = None
    tls: TlsPolicies | None = None


@dataclass(frozen=True, slots=True)
class Context:
    key: CanaryKey
    spec: CanarySpec
    route: RouteRef
    traffic: Traffic | None
    ports: Preflight
    store: Store
    sources: Sources
    query_set: builtins.QuerySet


def wanted(status: CanaryStatus, revision: str, *, command_pending: bool) -> bool:
    """Whether this tick may start a rollout whose items have not passed: a first tick, one in
    Initializing, a new revision (which starts over), or a command (retry starts over)."""
    starting = status.phase in (None, Phase.INITIALIZING)
    restarting = bool(status.revision) and status.revision != revision
    # A restart or a command (retry) may start a rollout whose condition the last one passed.
    return restarting or command_pending or (starting and preflight.needed(status.conditions))


def gather(context: Context) -> tuple[PreflightItem, ...]:
    return tuple(item(context) for item in ITEMS)


def sidecars(context: Context) -> PreflightItem:
    name = "sidecars"
    pods = context.ports.pods
    if pods is None:
        return PreflightItem(name, ItemState.SKIPPED, "not checked: no pod source here")
    seen: list[str] = []
    missing: list[str] = []
    for subset in context.route.subsets:
        try:
            found = pods.subset_pods(context.route, subset)
        except CanaryError as exc:
            return PreflightItem(
                name,
                ItemState.UNKNOWN,
                f"cannot list the pods of subset {subset.name}: {exc}",
                "grant the controller `list pods` in namespace "
                f"{context.route.namespace} (deploy/rbac.yaml)",
            )
        ready = [pod for pod in found.pods if pod.ready]
        bare = sorted(pod.name for pod in ready if not pod.sidecar)
        if bare:
            missing.append(f"subset {subset.name}: {', '.join(bare)} without istio-proxy")
        elif ready:
            seen.append(f"{subset.name} {len(ready)}/{len(ready)}")
        else:
            seen.append(f"{subset.name}: no ready pod to check")
    if missing:
        return PreflightItem(name, ItemState.FAILED, "; ".join(missing), SIDECAR_FIX)
    return PreflightItem(name, ItemState.OK, f"ready pods with the sidecar: {', '.join(seen)}")


def callers(context: Context) -> PreflightItem:
    name = "callers' proxies"
    addresses = () if context.ports.proxies is None else context.ports.proxies.addresses()
    if context.ports.proxies is None or not addresses:
        return PreflightItem(name, ItemState.SKIPPED, "not checked: no proxy visible")
    proxies, route = context.ports.proxies, context.route
    if context.traffic is None:
        return PreflightItem(name, ItemState.UNKNOWN, "the managed route could not be read")
    wanted_split = {subset: w for subset, w in context.traffic.weights.items() if w > 0}
    wrong: list[str] = []
    for address in addresses:
        try:
            splits = proxies.splits(address, route.namespace, route.host, route.route)
        except CanaryError as exc:
            return PreflightItem(
                name,
                ItemState.UNKNOWN,
                f"cannot read proxy {address}: {exc}",
                "make its admin port reachable from the controller, or drop it from --envoy-admin",
            )
        if not splits:
            wrong.append(f"{address} serves no route to {route.host}")
        elif any(dict(split) != wanted_split for split in splits):
            shown = ", ".join(_split(split) for split in splits)
            wrong.append(f"{address} serves {shown}")
    if wrong:
        return PreflightItem(
            name,
            ItemState.FAILED,
            f"the route says {_split(wanted_split)}, but {'; '.join(wrong)}",
            "the proxy is not in sync with istiod (istioctl proxy-status), or does not call "
            f"{route.host}: check its config and its connection to istiod",
        )
    return PreflightItem(
        name, ItemState.OK, f"{len(addresses)} proxy(ies) serve {_split(wanted_split)}"
    )


def metric_series(context: Context) -> PreflightItem:
    name = "metric series"
    spec = context.spec
    if spec.skip_analysis or not spec.analysis.metrics:
        return PreflightItem(name, ItemState.SKIPPED, "no metric check to run")
    stable = context.route.subsets[0].name if context.route.subsets else ""
    missing: list[str] = []
    unknown: list[str] = []
    asked = 0
    for metric in spec.analysis.metrics:
        try:
            resolved = queries.resolve(
                context.key,
                spec,
                metric,
                store=context.store,
                query_set=context.query_set,
                stable_subset=stable,
            )
            evidence = context.sources.metrics_for(resolved.template)
        except InvalidSpec:
            # Reported by observe as an Invalid Canary already; nothing here to add.
            continue
        if not isinstance(evidence, PromQL):
            continue
        text = _stable_query(context, metric.name, resolved, stable)
        try:
            found = series.selectors(text)
        except series.Unreadable as exc:
            unknown.append(f"{metric.name}: the query cannot be read ({exc})")
            continue
        for selector in dict.fromkeys(s.asked() for s in found):
            asked += 1
            answer = evidence.provider.measure(f"count({selector})")
            if answer.kind is MeasurementKind.VALUE and (answer.value or 0) > 0:
                continue
            if answer.kind is MeasurementKind.NO_DATA:
                missing.append(f"{metric.name}: no series {selector}")
            else:
                unknown.append(f"{metric.name}: {selector}: {answer.message or answer.kind}")
    if missing:
        return PreflightItem(
            name,
            ItemState.FAILED,
            "; ".join(missing + unknown),
            f"make the stable subset {stable}'s metrics reach Prometheus (telemetry on, proxies "
            "scraped) or fix the query's labels",
        )
    if unknown:
        return PreflightItem(
            name, ItemState.UNKNOWN, "; ".join(unknown), "make Prometheus answer the controller"
        )
    if not asked:
        return PreflightItem(name, ItemState.SKIPPED, "no Prometheus query among the checks")
    return PreflightItem(name, ItemState.OK, f"{asked} series found for subset {stable}")


def _stable_query(
    context: Context, metric: str, resolved: queries.ResolvedQuery, stable: str
) -> str:
    """The check's query as it would read for the stable subset, which has traffic now.

    A check that only compares is asked its requests count: its query counts bad events, whose
    series (a template's error counter) may appear only with the first one.
    """
    check = next(m for m in context.spec.analysis.metrics if m.name == metric)
    _, values = queries.variables(context.key, context.spec, check, stable_subset=stable)
    counting = check.compare is not None and check.threshold_range is None
    if resolved.template is None:
        chosen = builtins.QUERIES[context.query_set][metric]
        text = builtins.COUNTS[context.query_set][metric].requests if counting else chosen.query
    else:
        template = resolved.template.spec
        text = (template.requests_query if counting else None) or template.query or ""
    try:
        return templating.render(text, values)
    except templating.TemplateError:
        return resolved.query


EJECTIONS = "outlier_detection.ejections_enforced_total"
OVERFLOW = "upstream_rq_pending_overflow"


def chaos_stats(context: Context) -> PreflightItem:
    """The stats an experiment's verdict reads, on the callers' side of the fault's subset.

    Istio's proxies export a cluster's stats only where proxyStatsMatcher includes them; with
    none of the subset's cluster stats, the verdict would have nothing to read, and that fails.
    Envoy also creates the outlier-detection counters only for a cluster with outlier detection:
    a cluster whose stats are exported but that has no such counter is what a DestinationRule
    without `outlierDetection` looks like, which is what an ejection experiment is there to
    find out (its verdict fails on the missing ejections, never passes). So that passes here,
    with the line saying what was seen, rather than pre-empting the experiment.
    """
    name = "chaos stats"
    spec, route = context.spec, context.route
    needed: dict[str, set[str]] = {}
    for experiment in spec.chaos:
        subset = experiment.subset or spec.canary.subset
        if experiment.expect.ejection:
            needed.setdefault(subset, set()).add(EJECTIONS)
        if experiment.expect.overflow:
            needed.setdefault(subset, set()).add(OVERFLOW)
    if not needed:
        return PreflightItem(name, ItemState.SKIPPED, "no experiment reads proxy stats")
    proxies = context.ports.proxies
    addresses = () if proxies is None else proxies.addresses()
    if proxies is None or not addresses:
        return PreflightItem(name, ItemState.SKIPPED, "not checked: no proxy visible")
    fqdn = istio.fqdn(route.host, route.namespace)
    missing: list[str] = []
    notes: list[str] = []
    for address in addresses:
        for subset, stats in sorted(needed.items()):
            cluster = rf"^cluster\.outbound\|[0-9]+\|{re.escape(subset)}\|{re.escape(fqdn)}\."
            try:
                names = proxies.stat_names(address, cluster)
            except CanaryError as exc:
                return PreflightItem(name, ItemState.UNKNOWN, f"cannot read proxy {address}: {exc}")
            if not names:
                missing.append(f"{address}: no stats of subset {subset}'s cluster")
                continue
            for stat in sorted(stats):
                if any(found.endswith(f".{stat}") for found in names):
                    continue
                if stat == EJECTIONS and any(".outlier_detection." not in n for n in names):
                    notes.append(f"{address}: no outlier detection on subset {subset}'s cluster")
                else:
                    missing.append(f"{address}: no {stat} for subset {subset}")
    if missing:
        return PreflightItem(
            name,
            ItemState.FAILED,
            "; ".join(missing),
            'add ".*outlier_detection.*" and ".*upstream_rq_pending_overflow" to '
            "proxyStatsMatcher.inclusionRegexps (the mesh config, or the callers' "
            "proxy.istio.io/config annotation)",
        )
    seen = f"exported by {len(addresses)} proxy(ies)"
    if notes:
        seen += f" ({'; '.join(notes)}: the experiment will find no ejection)"
    return PreflightItem(name, ItemState.OK, seen)


MTLS_FIX = (
    "change the field each line names so that what callers send meets what the subset "
    "accepts (a DestinationRule's tls.mode, or the PeerAuthentication's mode)"
)


def mtls_pairings(context: Context) -> PreflightItem:
    """What callers send (DestinationRule tls) against what each subset accepts
    (PeerAuthentication), as `api/mtls.py` pairs them for `canary validate` too."""
    name = "mtls"
    tls, route = context.ports.tls, context.route
    if tls is None:
        return PreflightItem(name, ItemState.SKIPPED, "not checked: no mesh policy source here")
    host = istio.fqdn(route.host, route.namespace)
    namespace = istio.service_namespace(host) or route.namespace
    try:
        objects = tls.tls_objects(namespace, host)
    except CanaryError as exc:
        return PreflightItem(
            name,
            ItemState.UNKNOWN,
            f"cannot read the mesh's TLS policies: {exc}",
            "install Istio's security.istio.io CRDs and grant the controller get/list/watch on "
            "peerauthentications (deploy/rbac.yaml)",
        )
    subsets = _subset_labels(route, namespace, host, objects)
    selective = [p for p in objects.peer_authentications if _selects_workloads(p)]
    unlabelled = sorted(subset for subset, labels in subsets.items() if not labels)
    if unlabelled and selective:
        return PreflightItem(
            name,
            ItemState.UNKNOWN,
            f"subset(s) {', '.join(unlabelled)} have no labels in the Canary or the "
            "DestinationRule, so which workload PeerAuthentication applies is unknown",
            "give the subsets labels (the Canary's stable/canary labels)",
        )
    found = mtls.problems(
        namespace=namespace,
        host=host,
        subsets=subsets,
        peer_authentications=objects.peer_authentications,
        destination_rules=objects.destination_rules,
        port=context.spec.service.port,
    )
    if found:
        # The problems' own text uses "; ", and the item is one line: " | " parts them.
        return PreflightItem(
            name,
            ItemState.FAILED,
            f"{len(found)} pairing(s) break traffic: " + " | ".join(p.line() for p in found),
            MTLS_FIX,
        )
    return PreflightItem(
        name,
        ItemState.OK,
        f"callers' tls meets what subsets {', '.join(subsets)} accept "
        f"({len(objects.peer_authentications)} PeerAuthentication(s), "
        f"{len(objects.destination_rules)} DestinationRule(s) read)",
    )


def _subset_labels(
    route: RouteRef, namespace: str, host: str, objects: TlsObjects
) -> dict[str, dict[str, str]]:
    """Each subset's pod labels: the DestinationRule subset's, the Canary's over them."""
    rule_key = route.destination_rule_key
    rules = [r for r in objects.destination_rules if _key_of(r) == rule_key]
    if not rules:
        # The rule callers in the service's namespace use, where the Canary names none here.
        wanted = (namespace, mtls.ROOT_NAMESPACE)
        rules = [
            r
            for r in mtls.rules_for(host, namespace, list(objects.destination_rules))
            if _key_of(r)[0] in wanted
        ]
    written = istio.subsets(rules[0]) if rules else {}
    return {
        subset.name: {**written.get(subset.name, {}), **dict(subset.labels)}
        for subset in route.subsets
    }


def _selects_workloads(policy: istio.IstioObject) -> bool:
    # Read as mtls_settings reads it: a field of the wrong type is absent.
    spec = policy.get("spec")
    selector = spec.get("selector") if isinstance(spec, dict) else None
    return isinstance(selector, dict) and bool(selector.get("matchLabels"))


def _key_of(obj: istio.IstioObject) -> tuple[str, str | None]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return ("", None)
    name = meta.get("name")
    return (str(meta.get("namespace") or ""), name if isinstance(name, str) else None)


ItemCheck = Callable[[Context], PreflightItem]
ITEMS: tuple[ItemCheck, ...] = (sidecars, callers, metric_series, chaos_stats, mtls_pairings)


def _split(weights: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{s}: {w}" for s, w in sorted(weights.items())) + "}"
