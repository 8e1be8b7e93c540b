"""The local mesh's Router: weights live in the store's VirtualService, Envoy gets them via Pilot.

This is the same split of work as in a cluster: the controller edits the VirtualService (here in
the LocalStore, there in the API server), a Pilot translates it into Envoy config (here ours,
there istiod), and "applied" means Envoy acknowledged the config version that carries the
weights, not that the object was written. A VirtualService the Pilot cannot translate is refused
before the store is touched, so no half-applied change exists anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from canary.api import istio
from canary.engine.actions import InjectFault, SetWeights
from canary.engine.observation import ActiveFault, Traffic
from canary.errors import InvalidSpec
from canary.localmesh import faults
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey, RouteRef

# (host, subset labels, HTTPFault config, how many of the subset's instances, None: all): what
# the data plane's inbound proxies should serve.
PlannedFault = tuple[str, Mapping[str, str], dict[str, Any], int | None]


class DataPlane(Protocol):
    def push(
        self,
        virtual_services: Sequence[dict[str, Any]],
        destination_rules: Sequence[dict[str, Any]],
        gateways: Sequence[dict[str, Any]] = (),
        peer_authentications: Sequence[dict[str, Any]] | None = None,
    ) -> int: ...

    def applied_version(self) -> int | None: ...

    def set_faults(self, planned: Sequence[PlannedFault]) -> None:
        """Make the inbound proxies serve exactly these faults (none where none is planned)."""
        ...


class TranslationRefused(Exception):
    """Raised by a DataPlane's push when it cannot express an object; the message says why."""


class LocalRouter:
    def __init__(self, store: LocalStore, plane: DataPlane) -> None:
        self.store = store
        self.plane = plane
        # The config version that carries the store's objects as last published, and the
        # resourceVersions it was made from: an edit by anyone else is published on the next read.
        self._published: int | None = None
        self._published_from: tuple[str, ...] = ()

    def read(self, ref: RouteRef) -> Traffic:
        virtual_service = self._virtual_service(ref)
        route = self._route(virtual_service, ref)
        version = self._publish_if_changed()
        applied = self.plane.applied_version()
        return Traffic(
            weights=istio.live_weights(route),
            applied=applied is not None and applied >= version,
        )

    def set_weights(self, ref: RouteRef, weights: SetWeights) -> None:
        virtual_service = self._virtual_service(ref)
        route = self._route(virtual_service, ref)
        try:
            destinations = istio.weighted_destinations(
                virtual_service,
                route,
                stable=weights.stable_subset,
                canary=weights.canary_subset,
                canary_weight=weights.canary_weight,
            )
        except istio.RouteProblem as exc:
            raise InvalidSpec(str(exc)) from exc
        updated = istio.json_copy(virtual_service)
        updated["spec"]["http"][route.index]["route"] = destinations
        others = [
            vs
            for vs in self.store.objects("VirtualService")
            if _name(vs) != ref.virtual_service_key
        ]
        self._push([*others, updated])
        self.store.put(updated)
        self._published_from = self._fingerprint()

    # Faults: a record per host in the store, served by the plane's inbound proxies.

    def inject(self, ref: RouteRef, fault: InjectFault) -> None:
        labels = self._subset_labels(ref, fault.subset)
        record = faults.LocalFault(
            namespace=ref.namespace,
            host=ref.host,
            experiment=fault.experiment,
            subset=fault.subset,
            labels=labels,
            expires_at=fault.expires_at,
            config=faults.http_fault(fault.fault),
            pods=fault.pods,
        )
        body = record.body(_fault_name(ref))
        if ref.owner is not None:
            # As in a cluster: the Canary whose fault it is, so clearing by owner finds it.
            body["metadata"]["ownerReferences"] = [
                {"kind": "Canary", "name": ref.owner.name, "uid": ref.owner.uid}
            ]
        self.store.put(body)
        self._serve_faults()

    def clear_faults(self, ref: RouteRef) -> None:
        self.store.delete(faults.KIND, ref.namespace, _fault_name(ref))
        self._serve_faults()

    def clear_faults_of(self, key: CanaryKey) -> None:
        for body in self.store.objects(faults.KIND, key.namespace):
            meta = body.get("metadata") or {}
            owners = meta.get("ownerReferences") or []
            if any(owner.get("name") == key.name for owner in owners if isinstance(owner, dict)):
                self.store.delete(faults.KIND, key.namespace, str(meta.get("name", "")))
        self._serve_faults()

    def faults(self, ref: RouteRef) -> tuple[ActiveFault, ...]:
        # Served again on every read, so a plane that restarted (a new demo process on the same
        # state directory) gets the faults the records still hold.
        self._serve_faults()
        body = self.store.get(faults.KIND, ref.namespace, _fault_name(ref))
        if body is None:
            return ()
        record = faults.LocalFault.of(body)
        return (ActiveFault(record.experiment, record.subset, record.expires_at),)

    def sweep_faults(self, now: datetime) -> tuple[str, ...]:
        cleared = []
        for body in self.store.objects(faults.KIND):
            record = faults.LocalFault.of(body)
            if record.expires_at is None or record.expires_at <= now:
                meta = body.get("metadata") or {}
                self.store.delete(faults.KIND, record.namespace, str(meta.get("name", "")))
                cleared.append(f"{record.namespace}/{record.host}: {record.experiment}")
        self._serve_faults()
        return tuple(cleared)

    def _serve_faults(self) -> None:
        records = [faults.LocalFault.of(body) for body in self.store.objects(faults.KIND)]
        self.plane.set_faults(
            [(record.host, record.labels, record.config, record.pods) for record in records]
        )

    def _subset_labels(self, ref: RouteRef, subset: str) -> dict[str, str]:
        if ref.subsets and subset == ref.subsets[0].name:
            raise InvalidSpec(
                f"chaos: {subset} is the stable subset; a fault only goes to the canary"
            )
        name = ref.destination_rule or ref.host
        namespace = ref.destination_rule_key[0]
        rule = self.store.get("DestinationRule", namespace, name)
        for entry in ((rule or {}).get("spec") or {}).get("subsets") or []:
            if entry.get("name") == subset and entry.get("labels"):
                return {str(k): str(v) for k, v in entry["labels"].items()}
        raise InvalidSpec(
            f"chaos: DestinationRule {namespace}/{name} has no subset {subset} with labels, "
            "so the canary's workloads cannot be told apart"
        )

    def _virtual_service(self, ref: RouteRef) -> dict[str, Any]:
        namespace, name = ref.virtual_service_key
        found = self.store.get("VirtualService", namespace, name)
        if found is None:
            raise InvalidSpec(
                f"spec.service.virtualService: VirtualService {namespace}/{name} not found"
            )
        return found

    def _route(self, virtual_service: dict[str, Any], ref: RouteRef) -> istio.Route:
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

    def _publish_if_changed(self) -> int:
        current = self._fingerprint()
        if self._published is None or current != self._published_from:
            self._push(self.store.objects("VirtualService"))
            self._published_from = current
        assert self._published is not None
        return self._published

    def _push(self, virtual_services: Sequence[dict[str, Any]]) -> None:
        try:
            self._published = self.plane.push(
                virtual_services,
                self.store.objects("DestinationRule"),
                gateways=self.store.objects("Gateway"),
                peer_authentications=self.store.objects("PeerAuthentication"),
            )
        except TranslationRefused as exc:
            raise InvalidSpec(str(exc)) from exc

    def _fingerprint(self) -> tuple[str, ...]:
        return tuple(
            f"{kind}/{'/'.join(_name(body))}@{body['metadata'].get('resourceVersion')}"
            for kind in ("VirtualService", "DestinationRule", "Gateway", "PeerAuthentication")
            for body in self.store.objects(kind)
        )


def _fault_name(ref: RouteRef) -> str:
    return ref.destination_rule or ref.host


def _name(body: dict[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")
