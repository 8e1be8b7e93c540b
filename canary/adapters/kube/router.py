"""The Router on a Kubernetes API server: Istio's VirtualService weights, by JSON patch.

A GitOps tool usually owns the VirtualService. So a weight change is a JSON patch that touches
only the `weight` of the managed route's destinations (and appends the canary destination if
the route lacks it), guarded by a `test` of that route as we read it: if anyone changed the same
route meanwhile, the patch fails whole and the next tick reads again, and a change anywhere
else in the object survives untouched. The subsets the Canary names get the same care in the
DestinationRule: one with labels in the Canary is added when missing, one without must exist.

"Applied" means the data plane serves the split. The API server cannot say that; a
`Propagation` (the local Pilot's Envoy in tests, istiod's sync status in a mesh) can. Without
one, a write counts as applied once the API server holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import structlog

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.faults import Faults, cached_destination_rule
from canary.adapters.kube.rest import (
    DESTINATION_RULE,
    FIELD_MANAGER,
    JSON_PATCH,
    VIRTUAL_SERVICE,
    ApiError,
    Body,
    Kind,
    Rest,
)
from canary.api import istio
from canary.engine.actions import InjectFault, SetWeights
from canary.engine.observation import ActiveFault, Traffic
from canary.errors import InvalidSpec, Unavailable
from canary.ports import CanaryKey, RouteRef, SubsetRef

log = structlog.get_logger("canary.kube.router")


class Propagation(Protocol):
    def serves(
        self, namespace: str, host: str, route: str | None, weights: Mapping[str, int]
    ) -> bool:
        """Whether the data plane serves this split on the managed route; `weights` are the
        subsets' relative weights as written (istio.relative_weights), a share of their total."""
        ...


class KubeRouter:
    def __init__(
        self, rest: Rest, cache: ClusterCache, *, propagation: Propagation | None = None
    ) -> None:
        self.rest = rest
        self.cache = cache
        self.propagation = propagation
        self._faults = Faults(rest, cache)

    def read(self, ref: RouteRef) -> Traffic:
        virtual_service = self._virtual_service(ref)
        route = _route(virtual_service, ref)
        problems: tuple[str, ...] = ()
        try:
            self._check_subsets(ref)
        except InvalidSpec as exc:
            # The weights are still known: the Canary is Invalid, yet can go back to stable.
            problems = exc.problems
        weights = istio.live_weights(route)
        # Envoy is asked for the split as written (relative weights, exact), not the rounded
        # percentages the engine reads.
        applied = self.propagation is None or self.propagation.serves(
            ref.namespace, ref.host, route.name, istio.relative_weights(route)
        )
        writer = weights_writer(virtual_service)
        return Traffic(
            weights=weights,
            applied=applied,
            writer=None if writer in (None, FIELD_MANAGER) else writer,
            problems=problems,
        )

    def set_weights(self, ref: RouteRef, weights: SetWeights) -> None:
        try:
            self._ensure_subsets(ref)
        except InvalidSpec:
            if weights.canary_weight != 0:
                raise
            # All to stable needs no subset added (the route serves stable already): a Canary
            # made Invalid by its DestinationRule, or deleted, still gets its traffic back.
        virtual_service = self._virtual_service(ref)
        route = _route(virtual_service, ref)
        try:
            wanted = istio.weighted_destinations(
                virtual_service,
                route,
                stable=weights.stable_subset,
                canary=weights.canary_subset,
                canary_weight=weights.canary_weight,
            )
        except istio.RouteProblem as exc:
            raise InvalidSpec(str(exc)) from exc
        written = virtual_service["spec"]["http"][route.index].get("route") or []
        path = f"/spec/http/{route.index}/route"
        operations: list[dict[str, Any]] = [{"op": "test", "path": path, "value": written}]
        for index, entry in enumerate(wanted):
            if index >= len(written):
                operations.append({"op": "add", "path": f"{path}/-", "value": entry})
            elif written[index].get("weight") != entry["weight"]:
                # "add" on an object member sets it whether or not it was there.
                operations.append(
                    {"op": "add", "path": f"{path}/{index}/weight", "value": entry["weight"]}
                )
        if len(operations) == 1:
            return
        self._patch(VIRTUAL_SERVICE, *ref.virtual_service_key, operations)

    # Faults go in EnvoyFilters of their own (faults.py), never in the user's objects.

    def inject(self, ref: RouteRef, fault: InjectFault) -> None:
        self._faults.inject(ref, fault)

    def clear_faults(self, ref: RouteRef) -> None:
        self._faults.clear(ref)

    def faults(self, ref: RouteRef) -> tuple[ActiveFault, ...]:
        return self._faults.active(ref)

    def clear_faults_of(self, key: CanaryKey) -> None:
        self._faults.clear_owned(key)

    def sweep_faults(self, now: datetime) -> tuple[str, ...]:
        return self._faults.sweep(now)

    def _patch(
        self, kind: Kind, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> None:
        path = kind.path(namespace, name)
        try:
            written = self.rest.patch(path, operations, content_type=JSON_PATCH)
        except ApiError as exc:
            if exc.status == 404:
                raise InvalidSpec(f"{kind.kind} {namespace}/{name} not found") from exc
            if exc.status in (409, 422):
                # Someone changed the object between our read and our write; the watch brings
                # their version, and the next tick works from it.
                self.cache.reread(kind, path)
                raise Unavailable(
                    f"{kind.kind} changed while writing ({exc.message}); trying again",
                    retry_after=0.5,
                ) from exc
            raise
        self.cache.of(kind).remember(written)
        log.debug("patched", kind=kind.kind, version=written["metadata"].get("resourceVersion"))

    def _virtual_service(self, ref: RouteRef) -> Body:
        namespace, name = ref.virtual_service_key
        found = self.cache.of(VIRTUAL_SERVICE).get(namespace, name)
        if found is None:
            raise InvalidSpec(
                f"spec.service.virtualService: VirtualService {namespace}/{name} not found"
            )
        return found

    def _destination_rule(self, ref: RouteRef) -> Body | None:
        return cached_destination_rule(self.cache, ref)

    def _check_subsets(self, ref: RouteRef) -> list[SubsetRef]:
        """The subsets to add; raises InvalidSpec for a DestinationRule that cannot serve."""
        rule = self._destination_rule(ref)
        if rule is None:
            return []
        rule_namespace, _ = ref.destination_rule_key
        who = f"DestinationRule {rule_namespace}/{ref.destination_rule}"
        problems: list[str] = []
        rule_host = istio.destination_host(rule)
        if rule_host is None or not istio.host_matches(
            rule_host, rule_namespace, ref.host, ref.namespace
        ):
            problems.append(
                f"spec.service.destinationRule: {who} is for host {rule_host!r}, not {ref.host!r}"
            )
        defined = istio.subsets(rule)
        missing: list[SubsetRef] = []
        for subset in ref.subsets:
            labels = dict(subset.labels)
            if subset.name not in defined:
                if labels:
                    missing.append(subset)
                else:
                    problems.append(
                        f"spec: subset {subset.name!r} is not defined in {who} "
                        f"(subsets: {', '.join(sorted(defined)) or 'none'}); "
                        "give it labels in the Canary to have it added"
                    )
            elif labels and defined[subset.name] != labels:
                problems.append(
                    f"spec: subset {subset.name!r} of {who} selects {defined[subset.name]}, "
                    f"the Canary says {labels}"
                )
        if problems:
            raise InvalidSpec(*problems)
        return missing

    def _ensure_subsets(self, ref: RouteRef) -> None:
        missing = self._check_subsets(ref)
        rule = self._destination_rule(ref)
        if not missing or rule is None or ref.destination_rule is None:
            return
        version = rule["metadata"].get("resourceVersion")
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version}
        ]
        entries = [{"name": subset.name, "labels": dict(subset.labels)} for subset in missing]
        if isinstance(rule.get("spec", {}).get("subsets"), list):
            operations += [{"op": "add", "path": "/spec/subsets/-", "value": e} for e in entries]
        else:
            operations.append({"op": "add", "path": "/spec/subsets", "value": entries})
        self._patch(DESTINATION_RULE, ref.destination_rule_key[0], ref.destination_rule, operations)
        log.info("subsets.added", subsets=[subset.name for subset in missing])


def weights_writer(virtual_service: Body) -> str | None:
    """The manager that last wrote spec.http: Istio's CRDs keep lists atomic, so exactly one
    manager owns the whole list, the last one to change any route in it."""
    owners = [
        entry
        for entry in (virtual_service.get("metadata") or {}).get("managedFields") or []
        if "f:http" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    ]
    if not owners:
        return None
    latest = max(owners, key=lambda entry: str(entry.get("time") or ""))
    return str(latest.get("manager") or "") or None


def _route(virtual_service: Body, ref: RouteRef) -> istio.Route:
    try:
        return istio.managed_route(
            virtual_service,
            name=ref.route,
            host=ref.host,
            namespace=ref.virtual_service_key[0],
            host_namespace=ref.namespace,
        )
    except istio.RouteProblem as exc:
        raise InvalidSpec(str(exc)) from exc
