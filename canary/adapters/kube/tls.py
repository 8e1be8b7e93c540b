"""The mesh's TLS policy objects from the watch-fed cache, for preflight (the `TlsPolicies` port).

PeerAuthentications are watched cluster-wide like the other Istio kinds (no request per tick);
DestinationRules come from the cache the router already keeps. Only those `api/mtls.py` reads
are handed over: the root namespace's and the workload's PeerAuthentications, and the rules
whose host could name the service.

PeerAuthentication is an optional kind of the cache: a cluster without Istio's
`security.istio.io` CRD leaves its informer unsynced without making the controller unready.
Asked then, this raises Unavailable with the reason (the CRD missing, RBAC refusing), which
holds the rollout as `unknown`: an empty answer would read as "PERMISSIVE everywhere", a guess.
"""

from __future__ import annotations

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import DESTINATION_RULE, PEER_AUTHENTICATION, ApiError, Body
from canary.api import istio
from canary.api.mtls_settings import ROOT_NAMESPACE
from canary.errors import Unavailable
from canary.ports import TlsObjects


class KubeTlsPolicies:
    def __init__(self, cache: ClusterCache, *, root_namespace: str = ROOT_NAMESPACE) -> None:
        self.cache = cache
        self.root_namespace = root_namespace

    def tls_objects(self, namespace: str, host: str) -> TlsObjects:
        policies = self.cache.of(PEER_AUTHENTICATION)
        if not policies.synced.is_set():
            raise Unavailable(_why_unread(policies.error))
        wanted = {namespace, self.root_namespace}
        return TlsObjects(
            tuple(p for p in policies.items() if _namespace(p) in wanted),
            tuple(
                rule
                for rule in self.cache.of(DESTINATION_RULE).items()
                if _for_host(rule, host, namespace)
            ),
        )


def _why_unread(error: Exception | None) -> str:
    kind = f"{PEER_AUTHENTICATION.plural}.{PEER_AUTHENTICATION.group}"
    if isinstance(error, ApiError) and error.status == 404:
        return (
            f"{kind} is not served: Istio's {PEER_AUTHENTICATION.group} CRDs are not installed "
            f"({PEER_AUTHENTICATION.api_version})"
        )
    if isinstance(error, ApiError) and error.status == 403:
        return f"forbidden to list {kind} ({error.message})"
    if error is not None:
        return f"listing {kind}: {error}"
    return f"{kind} not listed yet"


def _for_host(rule: Body, host: str, namespace: str) -> bool:
    written = (rule.get("spec") or {}).get("host")
    return isinstance(written, str) and istio.host_matches(
        written, _namespace(rule), host, namespace
    )


def _namespace(body: Body) -> str:
    return str((body.get("metadata") or {}).get("namespace") or "")
