"""The pods of a subset and whether each runs Istio's sidecar, for preflight (the `Pods` port).

Listed by the subset's labels (the Canary's, else the DestinationRule's subset's, from the
watch-fed cache) in the route's namespace, once per preflight: preflight runs only before a
rollout's first step, so pods are never watched. A sidecar is the `istio-proxy` container, or
the `istio-proxy` init container with `restartPolicy: Always` (Kubernetes' native sidecars,
which istiod injects with ENABLE_NATIVE_SIDECARS). A pod is ready when its Ready condition is
True, as a Service's endpoints count it.
"""

from __future__ import annotations

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.faults import cached_destination_rule
from canary.adapters.kube.pods import selector
from canary.adapters.kube.rest import POD, ApiError, Body, Rest, list_items
from canary.api import istio
from canary.errors import Unavailable
from canary.ports import PodView, RouteRef, SubsetPods, SubsetRef

SIDECAR = "istio-proxy"


class KubePods:
    def __init__(self, rest: Rest, cache: ClusterCache) -> None:
        self.rest = rest
        self.cache = cache

    def subset_pods(self, ref: RouteRef, subset: SubsetRef) -> SubsetPods:
        labels = self._labels(ref, subset)
        try:
            listed = list_items(self.rest, POD.path(ref.namespace), label_selector=selector(labels))
        except ApiError as exc:
            if exc.status == 403:
                raise Unavailable(
                    f"forbidden to list pods in namespace {ref.namespace} ({exc.message})"
                ) from exc
            raise Unavailable(f"listing pods in namespace {ref.namespace}: {exc}") from exc
        pods = tuple(
            view(pod) for pod in listed if not (pod.get("metadata") or {}).get("deletionTimestamp")
        )
        return SubsetPods(tuple(sorted(labels.items())), pods)

    def _labels(self, ref: RouteRef, subset: SubsetRef) -> dict[str, str]:
        if subset.labels:
            return dict(subset.labels)  # the rule is then not read: it need not exist yet
        labels = istio.subset_selector({}, cached_destination_rule(self.cache, ref), subset.name)
        if not labels:
            # Listing with no selector would take every pod of the namespace for the subset's.
            raise Unavailable(
                f"subset {subset.name} has no labels in the Canary or the DestinationRule: its "
                "pods cannot be told apart"
            )
        return labels


def view(pod: Body) -> PodView:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    status = pod.get("status") or {}
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    native = [
        c
        for c in spec.get("initContainers") or []
        if isinstance(c, dict) and c.get("restartPolicy") == "Always"
    ]
    sidecar = any(c.get("name") == SIDECAR for c in containers + native)
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return PodView(name=str(meta.get("name") or ""), ready=ready, sidecar=sidecar)
