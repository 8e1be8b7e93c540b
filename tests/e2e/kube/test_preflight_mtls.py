"""Preflight's mTLS item through the real API server, as the controller identity binds.

A STRICT PeerAuthentication in the namespace and a DestinationRule with `tls.mode: DISABLE` hold
the rollout in Initializing, the Preflight condition naming the rule and its field and the route
untouched; setting ISTIO_MUTUAL lets the first step go. No pods (the sidecar item has nothing to
check), no Prometheus, no metric check: this test is about the TLS policy objects. And a kind
the server does not serve is unknown with the reason, never read as "no policy".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.informer import Informer
from canary.adapters.kube.rest import PEER_AUTHENTICATION, Kind, Rest, connect
from canary.adapters.kube.tls import KubeTlsPolicies
from canary.errors import Unavailable
from tests.e2e.kube import harness
from tests.kubeenv.cluster import KubeCluster


def _strict(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {"mtls": {"mode": "STRICT"}},
    }


def _condition(current: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in current.get("conditions") or [] if c["type"] == "Preflight")


def test_a_plaintext_rule_to_strict_workloads_holds_the_first_step_until_it_is_fixed(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    vs, dr, canary = harness.objects(kube_namespace)
    canary["spec"]["analysis"]["metrics"] = []
    canary["spec"].pop("chaos", None)
    dr["spec"]["trafficPolicy"]["tls"] = {"mode": "DISABLE"}
    harness.apply(kube_cluster, [_strict(kube_namespace), vs, dr, canary])
    controller = harness.ControllerProcess(
        kube_cluster, tmp_path, "http://127.0.0.1:1", leader_election=False
    ).start()
    try:
        held = harness.follow(
            kube_cluster, kube_namespace,
            lambda c: c.get("message", "").startswith("waiting for preflight"),
            timeout=30, controller=controller,
        )  # fmt: skip
        assert (held["phase"], held["canaryWeight"]) == ("Initializing", 0)
        condition = _condition(held)
        assert condition["status"] == "False"
        mtls_line = next(
            line for line in condition["message"].splitlines() if line.startswith("✗ mtls: ")
        )
        assert mtls_line.startswith(
            f"✗ mtls: 2 pairing(s) break traffic: DestinationRule {kube_namespace}/demo "
            "spec.trafficPolicy.tls.mode: sends plaintext to subset v1, which "
            f"{kube_namespace}/default (spec.mtls.mode: STRICT) accepts mTLS only"
        ), mtls_line
        assert "subset v2" in mtls_line
        vs_now = harness.get(
            kube_cluster, "virtualservices.networking.istio.io", kube_namespace, "demo"
        )
        assert harness.route_weights(vs_now) == {"v1": 100, "v2": 0}

        dr["spec"]["trafficPolicy"]["tls"] = {"mode": "ISTIO_MUTUAL"}
        harness.apply(kube_cluster, [dr])
        moved = harness.follow(
            kube_cluster, kube_namespace, lambda c: c.get("canaryWeight") == 10,
            timeout=30, controller=controller,
        )  # fmt: skip
        assert moved["phase"] == "Progressing"
        condition = _condition(moved)
        assert condition["status"] == "True"
        assert (
            "✓ mtls: callers' tls meets what subsets v1, v2 accept "
            "(1 PeerAuthentication(s), 1 DestinationRule(s) read)"
        ) in condition["message"]
    finally:
        controller.stop()


def test_a_kind_the_server_does_not_serve_is_unavailable_with_the_reason(
    kube_cluster: KubeCluster,
) -> None:
    """The informer's own 404, as a cluster without security.istio.io answers it (this one has
    the CRD, so the same request goes to a group nobody installed)."""
    rest = Rest(connect(str(kube_cluster.admin_kubeconfig)))
    cache = ClusterCache(rest, kinds=(PEER_AUTHENTICATION,))
    absent = Kind("PeerAuthentication", "security.canary.invalid", "v1", "peerauthentications")
    cache.informers[PEER_AUTHENTICATION] = Informer(rest, absent)
    cache.start()
    try:
        # As the controller starts: the first list of the optional kind was tried, and failed.
        assert cache.wait_synced(10.0)
    finally:
        cache.stop()
    assert cache.unsynced() == []
    with pytest.raises(
        Unavailable, match=re.escape("is not served: Istio's security.istio.io CRDs")
    ):
        KubeTlsPolicies(cache).tls_objects("default", "demo.default.svc.cluster.local")
