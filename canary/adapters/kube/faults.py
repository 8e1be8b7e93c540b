"""Faults on the canary's server side, as Istio EnvoyFilters canary writes, reads and removes.

A fault on the caller's route (a VirtualService `fault` block) is answered by the caller's own
Envoy and never reaches its outlier detection. So the fault goes in front of the canary's own
workloads: one EnvoyFilter per (namespace, host), named after the DestinationRule, that inserts
Envoy's HTTP fault filter before the router of every SIDECAR_INBOUND HTTP connection manager of
the workloads the canary subset selects. Their callers then see real upstream failures.

The object is canary's alone (labelled so, see rest.FAULT_SELECTOR), so it is written whole:
created, or replaced at the resourceVersion read. It carries its experiment, subset and expiry
in annotations, so a controller that starts after the expiry passed removes it without knowing
which Canary wrote it (`sweep`, also run periodically). It also carries an owner reference to
the Canary whose fault it holds, so a cluster's garbage collector removes it with its Canary,
and the controller finds a Canary's faults without its route (`clear_owned`). Two Canaries on
two routes of one service share the object (one per DestinationRule or host); each write
replaces it whole, owner reference included, so the owner is always the Canary whose fault is
in it, and deleting the other Canary leaves it alone.

Workload selection: `workloadSelector.labels` are the subset's labels as the DestinationRule
defines them, and an EnvoyFilter selects every workload of its namespace with those labels,
whichever service it serves. A subset that selects only `version: v2` therefore also faults
another service's v2 pods in the same namespace; subsets whose labels name the app too
(`app: x, version: v2`) keep the fault on the canary alone. A subset without labels would
select every workload of the namespace, so it is refused.

A fault for some of the canary's pods (`InjectFault.pods`, chosen by pods.py) keeps that
selector, so it can never reach another subset, and narrows each config patch to one pod's
proxy by `match.proxy.metadata: {NAME: <pod>}`: istiod compares that with the node metadata the
proxy sent (`model/envoyfilter.go proxyMatch`), and a sidecar's NAME is its pod's name
(pilot-agent fills it from POD_NAME, which injection takes from `metadata.name`). The pods chosen
are in an annotation too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from canary.adapters.kube import owners, pods
from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import (
    DESTINATION_RULE,
    ENVOY_FILTER,
    FAULT_HOST_LABEL,
    FAULT_SELECTOR,
    FIELD_MANAGER,
    MANAGED_BY_LABEL,
    ApiError,
    Body,
    Rest,
    list_items,
)
from canary.api import envoy_fault, istio
from canary.engine.actions import Fault, InjectFault
from canary.engine.observation import ActiveFault
from canary.errors import InvalidSpec, Unavailable
from canary.ports import CanaryKey, Owner, RouteRef

log = structlog.get_logger("canary.kube.faults")

NAME_PREFIX = "canary-fault-"
HOST_ANNOTATION = "canary.dev/fault-host"
EXPERIMENT_ANNOTATION = "canary.dev/experiment"
SUBSET_ANNOTATION = "canary.dev/subset"
EXPIRES_ANNOTATION = "canary.dev/expires-at"
PODS_ANNOTATION = "canary.dev/pods"
# The node metadata key a sidecar's pod name arrives under (pkg/model/proxy.go, NAME).
POD_NAME_METADATA = "NAME"

HTTP_FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
# The filter's name in Envoy's chain. istiod already puts an empty `envoy.filters.http.fault` in
# every HCM (for route-level faults); a name of our own tells ours apart in a config_dump, and
# Envoy finds the extension by the typed_config's type, not by the name.
FILTER_NAME = "canary.fault"

# Envoy's FractionalPercent denominators, finest last.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_MAX_LABEL, _MAX_NAME = 63, 253
WRITE_ATTEMPTS = 3


class Faults:
    """The Router's fault methods for KubeRouter: reads from the watch-fed cache, writes whole."""

    def __init__(self, rest: Rest, cache: ClusterCache) -> None:
        self.rest = rest
        self.cache = cache

    def inject(self, ref: RouteRef, fault: InjectFault) -> None:
        labels = selector_labels(ref, fault.subset, self._destination_rule(ref))
        name = filter_name(ref)
        path = ENVOY_FILTER.path(ref.namespace, name)
        current = self.cache.of(ENVOY_FILTER).get(ref.namespace, name)
        chosen = None
        if fault.pods is not None:
            chosen = pods.chosen(
                self.rest,
                ref.namespace,
                labels,
                fault.pods,
                subset=fault.subset,
                keep=_pods_of(current, fault),
            )
        body = envoy_filter(ref, fault, labels, pods=chosen, owner=ref.owner)
        for _ in range(WRITE_ATTEMPTS):
            try:
                if current is None:
                    body["metadata"].pop("resourceVersion", None)
                    written = self.rest.post(ENVOY_FILTER.path(ref.namespace), body)
                else:
                    _check_ours(current)
                    body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
                    written = self.rest.put(path, body)
            except ApiError as exc:
                if exc.status not in (404, 409):
                    raise
                # Our cache was behind: someone created, changed or deleted it meanwhile.
                current = self.rest.get_or_none(path)
                continue
            self.cache.of(ENVOY_FILTER).remember(written)
            log.debug(
                "fault.written",
                envoy_filter=f"{ref.namespace}/{name}",
                version=written["metadata"].get("resourceVersion"),
                pods=chosen,
            )
            return
        raise Unavailable(
            f"EnvoyFilter {ref.namespace}/{name} kept changing while writing it", retry_after=0.5
        )

    def clear(self, ref: RouteRef) -> None:
        for body in self._for_host(ref):
            self._delete(ref.namespace, body["metadata"]["name"])

    def clear_owned(self, key: CanaryKey) -> None:
        """Removes every fault whose owner reference names the Canary `key`. The name is enough
        while that Canary exists: a later one of the same name cannot exist beside it."""
        for body in self.cache.of(ENVOY_FILTER).items():
            meta = body.get("metadata") or {}
            if meta.get("namespace") == key.namespace and key.name in owners.names(body):
                self._delete(key.namespace, str(meta.get("name")))

    def active(self, ref: RouteRef) -> tuple[ActiveFault, ...]:
        return tuple(active_fault(body) for body in self._for_host(ref))

    def sweep(self, now: datetime) -> tuple[str, ...]:
        """Removes every canary fault in the cluster whose expiry has passed. Read from the
        cache once it has synced (a periodic sweep costs no request), else listed from the
        API (a controller starting may sweep before its cache is whole)."""
        removed = []
        informer = self.cache.of(ENVOY_FILTER)
        found = informer.items() if informer.synced.is_set() else self._list_all()
        for body in found:
            fault = active_fault(body)
            if fault.expires_at is not None and fault.expires_at > now:
                continue
            meta = body["metadata"]
            self._delete(meta["namespace"], meta["name"])
            removed.append(f"{meta['namespace']}/{meta['name']}")
        if removed:
            log.info("fault.swept", removed=removed)
        return tuple(removed)

    def _for_host(self, ref: RouteRef) -> list[Body]:
        return sorted(
            (
                body
                for body in self.cache.of(ENVOY_FILTER).items()
                if body["metadata"].get("namespace") == ref.namespace
                and _annotations(body).get(HOST_ANNOTATION) == ref.host
            ),
            key=lambda body: str(body["metadata"].get("name")),
        )

    def _delete(self, namespace: str, name: str) -> None:
        try:
            self.rest.delete(ENVOY_FILTER.path(namespace, name))
        except ApiError as exc:
            # Already gone (another replica's sweep, a user): what clearing wanted.
            if exc.status != 404:
                raise
        self.cache.of(ENVOY_FILTER).forget(namespace, name)
        log.debug("fault.deleted", envoy_filter=f"{namespace}/{name}")

    def _list_all(self) -> list[Body]:
        return list_items(self.rest, ENVOY_FILTER.path(), label_selector=FAULT_SELECTOR)

    def _destination_rule(self, ref: RouteRef) -> Body:
        found = cached_destination_rule(self.cache, ref)
        if found is None:
            raise InvalidSpec(
                "chaos: a fault needs the DestinationRule whose subset names the canary's "
                "workloads; the Canary names none"
            )
        return found


def cached_destination_rule(cache: ClusterCache, ref: RouteRef) -> Body | None:
    """The Canary's DestinationRule from the cache; None when it names none, InvalidSpec when
    the one it names does not exist (the weights' router and the faults read it alike)."""
    if ref.destination_rule is None:
        return None
    namespace = ref.destination_rule_key[0]
    found = cache.of(DESTINATION_RULE).get(namespace, ref.destination_rule)
    if found is None:
        raise InvalidSpec(
            f"spec.service.destinationRule: DestinationRule "
            f"{namespace}/{ref.destination_rule} not found"
        )
    return found


def selector_labels(ref: RouteRef, subset: str, rule: Body) -> dict[str, str]:
    """The labels of `subset`'s workloads, or InvalidSpec if a fault may not go there."""
    who = f"DestinationRule {ref.destination_rule_key[0]}/{ref.destination_rule}"
    named = [entry.name for entry in ref.subsets]
    # RouteRef.subsets is (stable, canary), as the controller builds it.
    if named and subset == named[0]:
        raise InvalidSpec(f"chaos: subset {subset!r} is the stable one; faults go to the canary")
    if named and subset not in named:
        raise InvalidSpec(
            f"chaos: subset {subset!r} is not the canary's ({', '.join(named[1:]) or 'none'})"
        )
    defined = istio.subsets(rule)
    if subset not in defined:
        raise InvalidSpec(
            f"chaos: subset {subset!r} is not defined in {who} "
            f"(subsets: {', '.join(sorted(defined)) or 'none'})"
        )
    labels = defined[subset]
    if not labels:
        raise InvalidSpec(
            f"chaos: subset {subset!r} of {who} has no labels; a fault would reach every "
            f"workload of namespace {ref.namespace}"
        )
    for entry in ref.subsets:
        if entry.name == subset and entry.labels and dict(entry.labels) != labels:
            raise InvalidSpec(
                f"chaos: subset {subset!r} of {who} selects {labels}, "
                f"the Canary says {dict(entry.labels)}"
            )
    return labels


def envoy_filter(
    ref: RouteRef,
    fault: InjectFault,
    labels: dict[str, str],
    *,
    pods: Sequence[str] | None = None,
    owner: Owner | None = None,
) -> Body:
    """The whole EnvoyFilter object for `fault` on the workloads with `labels`, or only on the
    proxies of `pods` among them; owned by the Canary `owner` when one is given."""
    annotations = {
        HOST_ANNOTATION: ref.host,
        EXPERIMENT_ANNOTATION: fault.experiment,
        SUBSET_ANNOTATION: fault.subset,
        EXPIRES_ANNOTATION: rfc3339(fault.expires_at),
    }
    if pods is not None:
        if not pods:
            raise ValueError("a fault for some pods names at least one")
        annotations[PODS_ANNOTATION] = ",".join(pods)
    typed_config = {"@type": HTTP_FAULT_TYPE, **http_fault(fault.fault)}
    metadata: Body = {
        "name": filter_name(ref),
        "namespace": ref.namespace,
        "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, FAULT_HOST_LABEL: label_value(ref.host)},
        "annotations": annotations,
    }
    if owner is not None:
        metadata["ownerReferences"] = [owners.reference(owner)]
    return {
        "apiVersion": ENVOY_FILTER.api_version,
        "kind": ENVOY_FILTER.kind,
        "metadata": metadata,
        "spec": {
            "workloadSelector": {"labels": dict(labels)},
            "configPatches": (
                [_config_patch(typed_config, None)]
                if pods is None
                else [_config_patch(typed_config, pod) for pod in pods]
            ),
        },
    }


def _config_patch(typed_config: dict[str, Any], pod: str | None) -> Body:
    """The fault filter before the router of the inbound HTTP connection managers, of `pod`'s
    proxy alone if one is named."""
    match: Body = {
        "context": "SIDECAR_INBOUND",
        "listener": {
            "filterChain": {
                "filter": {
                    "name": "envoy.filters.network.http_connection_manager",
                    "subFilter": {"name": "envoy.filters.http.router"},
                }
            }
        },
    }
    if pod is not None:
        match["proxy"] = {"metadata": {POD_NAME_METADATA: pod}}
    return {
        "applyTo": "HTTP_FILTER",
        "match": match,
        "patch": {
            "operation": "INSERT_BEFORE",
            "value": {"name": FILTER_NAME, "typed_config": dict(typed_config)},
        },
    }


def http_fault(fault: Fault) -> dict[str, Any]:
    """Envoy's HTTPFault (proto JSON) for `fault`; InvalidSpec when Envoy cannot express it."""
    try:
        return envoy_fault.http_fault(
            abort_status=fault.abort_status,
            abort_percent=fault.abort_percent,
            delay_seconds=fault.delay_seconds,
            delay_percent=fault.delay_percent,
        )
    except ValueError as exc:
        raise InvalidSpec(f"chaos: {exc}") from exc


def active_fault(body: Body) -> ActiveFault:
    annotations = _annotations(body)
    return ActiveFault(
        experiment=str(annotations.get(EXPERIMENT_ANNOTATION) or ""),
        subset=str(annotations.get(SUBSET_ANNOTATION) or ""),
        expires_at=parse_expiry(annotations.get(EXPIRES_ANNOTATION)),
    )


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("an expiry must carry its time zone")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_expiry(text: object) -> datetime | None:
    """The expiry written by rfc3339; None for anything else (a hand edit, a naive time)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def filter_name(ref: RouteRef) -> str:
    name = f"{NAME_PREFIX}{ref.destination_rule or ref.host}"
    if len(name) <= _MAX_NAME:
        return name
    return f"{name[: _MAX_NAME - 11].rstrip('-.')}-{_digest(name)}"


def label_value(host: str) -> str:
    """`host` if it is a valid label value, else a prefix of it and a digest of the whole."""
    if len(host) <= _MAX_LABEL and _LABEL_VALUE.match(host):
        return host
    prefix = re.sub(r"[^-A-Za-z0-9_.]", "-", host)[: _MAX_LABEL - 11].strip("-_.")
    return f"{prefix}-{_digest(host)}" if prefix else _digest(host)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _pods_of(body: Body | None, fault: InjectFault) -> tuple[str, ...]:
    """The pods an EnvoyFilter of the same experiment on the same subset went to."""
    annotations = _annotations(body or {})
    same = (
        annotations.get(EXPERIMENT_ANNOTATION) == fault.experiment
        and annotations.get(SUBSET_ANNOTATION) == fault.subset
    )
    text = annotations.get(PODS_ANNOTATION)
    if not same or not isinstance(text, str):
        return ()
    return tuple(name for name in text.split(",") if name)


def _annotations(body: Body) -> dict[str, Any]:
    found = (body.get("metadata") or {}).get("annotations")
    return found if isinstance(found, dict) else {}


def _check_ours(body: Body) -> None:
    labels = (body.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != FIELD_MANAGER:
        meta = body.get("metadata") or {}
        raise InvalidSpec(
            f"chaos: EnvoyFilter {meta.get('namespace')}/{meta.get('name')} exists and is not "
            "canary's; it is left alone and no fault is injected"
        )
