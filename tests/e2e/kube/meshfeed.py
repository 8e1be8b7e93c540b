"""The local mesh's Pilot fed from the API server, in the place istiod takes in a cluster.

It watches VirtualServices and DestinationRules of one namespace and publishes them to the
mesh's client-side Envoy on every change, so the weights the controller writes into the API
server are the weights Envoy serves, by the same path (API server, then a Pilot, then xDS).
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import DESTINATION_RULE, VIRTUAL_SERVICE, Kind, Rest
from canary.localmesh.mesh import LocalMesh
from canary.localmesh.router import TranslationRefused

log = structlog.get_logger("tests.meshfeed")


def first_route_split(virtual_service: dict[str, Any]) -> dict[str, int]:
    """The first http route's split (subset -> weight), read from the object as Istio defines
    it, not with the routers' own reader (`istio.live_weights`), so that a wrong reader cannot
    vouch for itself: a lone destination without a weight holds 100, others without one 0."""
    destinations = virtual_service["spec"]["http"][0].get("route") or []
    split: dict[str, int] = {}
    for entry in destinations:
        subset = entry["destination"].get("subset") or ""
        default = 100 if len(destinations) == 1 else 0
        split[subset] = split.get(subset, 0) + int(entry.get("weight", default))
    return split


class MeshFeed:
    def __init__(self, rest: Rest, mesh: LocalMesh, namespace: str) -> None:
        self.mesh = mesh
        self.namespace = namespace
        self.cache = ClusterCache(rest, kinds=(VIRTUAL_SERVICE, DESTINATION_RULE))
        self.cache.on_change(self._changed)
        self.pushes = 0
        # Why the last push was refused, None once one went through: an object can arrive
        # before the one it depends on (a VirtualService before its DestinationRule), and then
        # the Pilot refuses until both are there, as istiod warns until both are there.
        self.refused: str | None = None
        # Every split the API server held for the managed route, in watch order: a test reads
        # "traffic never jumped" from it without sampling gaps.
        self.splits: list[dict[str, int]] = []
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meshfeed", daemon=True)

    def start(self) -> MeshFeed:
        self.cache.start()
        if not self.cache.wait_synced(30):
            raise RuntimeError(f"mesh feed: caches not synced: {self.cache.unsynced()}")
        self._dirty.set()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        self._thread.join(5)
        self.cache.stop()

    def _changed(self, kind: Kind, key: tuple[str, str]) -> None:
        if key[0] != self.namespace:
            return
        if kind == VIRTUAL_SERVICE:
            body = self.cache.of(kind).get(*key)
            if body is not None:
                split = first_route_split(body)
                if not self.splits or self.splits[-1] != split:
                    self.splits.append(split)
        self._dirty.set()

    def canary_weights(self, canary: str = "v2") -> list[int]:
        weights: list[int] = []
        for split in self.splits:
            if not weights or weights[-1] != split.get(canary, 0):
                weights.append(split.get(canary, 0))
        return weights

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._dirty.wait(1.0):
                continue
            self._dirty.clear()
            if self._stop.is_set():
                return
            try:
                self.mesh.push(self._objects(VIRTUAL_SERVICE), self._objects(DESTINATION_RULE))
                self.pushes += 1
                self.refused = None
            except TranslationRefused as exc:
                # Like istiod, a config the Pilot cannot express is not served; the test sees it.
                self.refused = str(exc)
                log.warning("meshfeed.refused", error=str(exc))

    def _objects(self, kind: Kind) -> list[dict[str, Any]]:
        return [
            body
            for body in self.cache.of(kind).items()
            if (body.get("metadata") or {}).get("namespace") == self.namespace
        ]
