"""KubeTlsPolicies from the cache: the namespaces and host mtls reads, and a PeerAuthentication
kind that never listed (no CRD, no RBAC) said so, never answered as "none", never a readiness
blocker."""

from __future__ import annotations

from typing import Any

import pytest

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import DESTINATION_RULE, PEER_AUTHENTICATION, ApiError
from canary.adapters.kube.tls import KubeTlsPolicies
from canary.errors import CanaryError, Unavailable

FQDN = "reviews.shop.svc.cluster.local"


def body(kind: str, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"namespace": namespace, "name": name}, "spec": spec}


def cache() -> ClusterCache:
    # Never started: the test fills the informers as their watches would.
    return ClusterCache(rest=None)  # type: ignore[arg-type]


def test_the_root_and_workload_namespaces_policies_and_the_hosts_rules() -> None:
    filled = cache()
    policies = filled.of(PEER_AUTHENTICATION)
    for namespace in ("istio-system", "shop", "other"):
        policies.remember(body("PeerAuthentication", namespace, "default"))
    policies.synced.set()
    rules = filled.of(DESTINATION_RULE)
    rules.remember(body("DestinationRule", "shop", "reviews", host="reviews"))
    rules.remember(body("DestinationRule", "istio-system", "all", host="*.shop.svc.cluster.local"))
    rules.remember(body("DestinationRule", "shop", "ratings", host="ratings"))
    rules.remember(body("DestinationRule", "shop", "broken", host=7))
    found = KubeTlsPolicies(filled).tls_objects("shop", FQDN)
    assert sorted(p["metadata"]["namespace"] for p in found.peer_authentications) == [
        "istio-system",
        "shop",
    ]
    assert sorted(r["metadata"]["name"] for r in found.destination_rules) == ["all", "reviews"]


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            ApiError(404, "NotFound", "the server could not find the requested resource"),
            "peerauthentications.security.istio.io is not served: Istio's security.istio.io "
            "CRDs are not installed (security.istio.io/v1)",
        ),
        (
            ApiError(403, "Forbidden", "cannot list"),
            "forbidden to list peerauthentications.security.istio.io (cannot list)",
        ),
        (
            CanaryError("connection refused"),
            "listing peerauthentications.security.istio.io: connection refused",
        ),
        (None, "peerauthentications.security.istio.io not listed yet"),
    ],
)
def test_an_unlisted_kind_is_unavailable_with_the_reason(
    error: CanaryError | None, said: str
) -> None:
    unlisted = cache()
    unlisted.of(PEER_AUTHENTICATION).error = error
    with pytest.raises(Unavailable) as raised:
        KubeTlsPolicies(unlisted).tls_objects("shop", FQDN)
    assert str(raised.value) == said


def test_readiness_does_not_wait_for_the_optional_kind_and_start_up_for_its_first_try() -> None:
    waiting = cache()
    for kind, informer in waiting.informers.items():
        if kind != PEER_AUTHENTICATION:
            informer.synced.set()
    assert waiting.unsynced() == []
    # Start-up waits until the first list was tried, so the first tick has its answer.
    assert not waiting.wait_synced(0.0)
    waiting.of(PEER_AUTHENTICATION).tried.set()
    assert waiting.wait_synced(0.0)
    waiting.of(DESTINATION_RULE).synced.clear()
    assert waiting.unsynced() == ["destinationrules"]
    assert not waiting.wait_synced(0.0)
