"""The informers of every kind the controller reads, started and synced together.

An optional kind (PeerAuthentication: a mesh may run without Istio's security CRDs) is watched
like the others but left out of readiness, so a cluster without its CRD does not keep the
controller unready for good; start-up waits only for its first list to be tried, and its reader
asks `synced` and says why when it is not.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from canary.adapters.kube.informer import Informer, Listener
from canary.adapters.kube.rest import (
    CANARY,
    CHAT_PROVIDER,
    DEPLOYMENT,
    DESTINATION_RULE,
    ENVOY_FILTER,
    FAULT_SELECTOR,
    METRIC_TEMPLATE,
    PEER_AUTHENTICATION,
    VIRTUAL_SERVICE,
    Kind,
    Rest,
)

CONTROLLER_KINDS = (
    CANARY,
    METRIC_TEMPLATE,
    CHAT_PROVIDER,
    VIRTUAL_SERVICE,
    DESTINATION_RULE,
    DEPLOYMENT,
    ENVOY_FILTER,
    PEER_AUTHENTICATION,
)
OPTIONAL_KINDS = frozenset({PEER_AUTHENTICATION})
# A mesh holds many EnvoyFilters of its own; the controller caches only the faults it injected.
CONTROLLER_SELECTORS: Mapping[Kind, str] = {ENVOY_FILTER: FAULT_SELECTOR}


class ClusterCache:
    def __init__(
        self,
        rest: Rest,
        kinds: tuple[Kind, ...] = CONTROLLER_KINDS,
        *,
        selectors: Mapping[Kind, str] = CONTROLLER_SELECTORS,
        optional: frozenset[Kind] = OPTIONAL_KINDS,
    ) -> None:
        self.rest = rest
        self.optional = optional
        self.informers = {
            kind: Informer(rest, kind, label_selector=selectors.get(kind)) for kind in kinds
        }

    def of(self, kind: Kind) -> Informer:
        return self.informers[kind]

    def reread(self, kind: Kind, path: str) -> None:
        """Fetch one object again after a write lost a race to another writer (409/422), so the
        next tick works from the winner's version rather than waiting for the watch."""
        fresh = self.rest.get_or_none(path)
        if fresh is not None:
            self.informers[kind].remember(fresh)

    def on_change(self, listener: Listener) -> None:
        for informer in self.informers.values():
            informer.on_change(listener)

    def start(self) -> None:
        for informer in self.informers.values():
            informer.start()

    def stop(self) -> None:
        for informer in self.informers.values():
            informer.stop()

    def unsynced(self) -> list[str]:
        """The kinds not listed yet: the controller is not ready while any is left."""
        return [
            kind.plural
            for kind, informer in self.informers.items()
            if not informer.synced.is_set() and kind not in self.optional
        ]

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        # An optional kind is waited for until its first list was tried (listed, or failed
        # with the reason its reader reports), so the first tick does not see "not listed yet".
        return all(
            (informer.tried if kind in self.optional else informer.synced).wait(
                max(0.0, deadline - time.monotonic())
            )
            for kind, informer in self.informers.items()
        )
