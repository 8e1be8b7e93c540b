"""The local mesh's answer to preflight's pod question (the `Pods` port).

The mesh's "pods" are its app processes, each behind an inbound Envoy of its own: that Envoy is
the pod's sidecar, as istio-proxy is in a cluster (the client-side Envoy plays the callers'
sidecar). Every instance is therefore reported with the sidecar, and ready while both its app
and its Envoy run. An instance belongs to a subset when its labels (`app`, and `version`, as the
local Pilot gives its workloads) hold all of the subset's labels: the Canary's, else the
DestinationRule's in the store. This is no check of injection (the mesh always has it); it
answers so that the same preflight runs on the demo as in a cluster, and a dead instance shows.
"""

from __future__ import annotations

from canary.api import istio
from canary.errors import Unavailable
from canary.localmesh.mesh import LocalMesh
from canary.localmesh.store import LocalStore
from canary.ports import PodView, RouteRef, SubsetPods, SubsetRef


class LocalPods:
    def __init__(self, store: LocalStore, mesh: LocalMesh) -> None:
        self.store = store
        self.mesh = mesh

    def subset_pods(self, ref: RouteRef, subset: SubsetRef) -> SubsetPods:
        labels = self._labels(ref, subset)
        pods = tuple(
            PodView(
                name=instance.name,
                ready=instance.app.alive() and instance.inbound.process.alive(),
                sidecar=True,
            )
            for instance in self.mesh.instances
            if labels.items() <= {"app": self.mesh.service, "version": instance.version}.items()
        )
        return SubsetPods(tuple(sorted(labels.items())), pods)

    def _labels(self, ref: RouteRef, subset: SubsetRef) -> dict[str, str]:
        # Named as the local router finds it: the Canary's rule, else one named like the host.
        namespace, name = ref.destination_rule_key
        rule = self.store.get("DestinationRule", namespace, name or ref.host)
        labels = istio.subset_selector(dict(subset.labels), rule, subset.name)
        if not labels:
            raise Unavailable(
                f"subset {subset.name} has no labels in the Canary or the DestinationRule: its "
                "instances cannot be told apart"
            )
        return labels
