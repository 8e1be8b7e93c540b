"""The Deployments a Canary names, on the API server: readiness and pod template revision from
the watch-fed cache (no request per tick), and scaling a retired one to zero.

The template's revision is a digest of `spec.template`, so anything a new pod would run
differently with (the image, an env variable, a volume) is a new revision, and nothing else is
(replicas, the Deployment's own labels or annotations).
"""

from __future__ import annotations

import structlog

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import DEPLOYMENT, MERGE_PATCH, ApiError, Body, Rest
from canary.api.spec import TargetRef
from canary.engine import revision
from canary.engine.observation import TargetState
from canary.errors import InvalidSpec, Unavailable

log = structlog.get_logger("canary.kube.workloads")


class KubeWorkloads:
    def __init__(self, rest: Rest, cache: ClusterCache) -> None:
        self.rest = rest
        self.cache = cache

    def target(self, namespace: str, target: TargetRef) -> TargetState:
        body = self.cache.of(DEPLOYMENT).get(namespace, target.name)
        if body is None:
            raise InvalidSpec(f"targetRef: {target.kind} {namespace}/{target.name} not found")
        return TargetState(ready=deployment_ready(body), template_revision=template_revision(body))

    def scale_to_zero(self, namespace: str, name: str) -> None:
        # The scale subresource: RBAC grants exactly `patch deployments/scale`, not the right to
        # change anything else in a Deployment.
        path = DEPLOYMENT.path(namespace, name, "scale")
        try:
            self.rest.patch(path, {"spec": {"replicas": 0}}, content_type=MERGE_PATCH)
        except ApiError as exc:
            if exc.status == 404:
                log.info("scale_down.gone", deployment=f"{namespace}/{name}")
                return
            raise Unavailable(f"scaling Deployment {namespace}/{name} to zero: {exc}") from exc


def deployment_ready(body: Body) -> bool:
    """Ready as `kubectl rollout status` means it: the controller saw the newest spec, and every
    wanted replica is updated and available."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False
    return all(
        int(status.get(field) or 0) >= wanted
        for field in ("updatedReplicas", "availableReplicas", "readyReplicas")
    )


def template_revision(body: Body) -> str:
    return revision.of_template((body.get("spec") or {}).get("template") or {})
