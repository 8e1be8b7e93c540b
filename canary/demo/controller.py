"""The real controller, wired to the local mesh instead of a cluster.

The same Reconciler and Controller that run in a cluster, given the LocalStore for the API
server, the LocalRouter (our Pilot) for istiod, the mesh's Prometheus for every template's, and
the client-side Envoy as the callers' sidecars for preflight. The demo holds the one Reconciler
this builds, so what it asks before starting the controller (warmup.py) goes through the very
router and sources the controller then uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from canary.adapters.envoy_admin import EnvoyAdmin
from canary.adapters.prometheus import PrometheusMetrics
from canary.adapters.webhooks import HttpWebhooks
from canary.api import builtins
from canary.api.metric_template import PrometheusProvider
from canary.api.traces import JaegerProvider
from canary.controller.chat.publisher import ChatPublisher
from canary.controller.clock import SystemClock
from canary.controller.notify import FanOut, LogNotifier
from canary.controller.preflight import Preflight
from canary.controller.reconcile import Reconciler
from canary.controller.scheduler import Controller
from canary.controller.sources import Sources, promql
from canary.controller.traces import spans_of
from canary.demo import traces
from canary.localmesh.mesh import LocalMesh
from canary.localmesh.pods import LocalPods
from canary.localmesh.router import LocalRouter
from canary.localmesh.store import LocalStore

log = structlog.get_logger("canary.demo")


def local_controller(
    store: LocalStore,
    mesh: LocalMesh,
    metrics: PrometheusMetrics,
    *,
    chat: ChatPublisher | None = None,
    callers: Sequence[str] | None = None,
) -> Controller:
    """`chat` tells the Canary's notifications (its outbox is started and stopped by the
    caller); `callers` are the admin addresses of the Envoys preflight asks for the route (see
    `caller_proxies`; None: the client side alone)."""
    reconciler = Reconciler(
        store=store,
        workloads=store,
        router=LocalRouter(store, mesh),
        notifier=FanOut([LogNotifier(), store]),
        clock=SystemClock(),
        sources=Sources(
            builtin=metrics,
            webhooks=HttpWebhooks(),
            secrets=store,
            metrics={
                PrometheusProvider: promql(_MeshPrometheus(metrics)),
                JaegerProvider: spans_of(traces.MeshJaeger(mesh.jaeger_url if mesh.jaeger else "")),
            },
        ),
        query_set=builtins.QuerySet.ENVOY,
        chat=chat,
        preflight=Preflight(
            pods=LocalPods(store, mesh),
            proxies=EnvoyAdmin(list(callers) if callers is not None else [mesh.admin_url]),
            tls=store,
        ),
    )
    return Controller(reconciler, resync=1.0)


def caller_proxies(mesh: LocalMesh, objects: Sequence[dict[str, Any]]) -> list[str]:
    """The admin addresses of the Envoys that should serve the demo's route, as istiod would
    program them: the client-side Envoy (standing for the callers' sidecars, localmesh/pods.py)
    where a VirtualService is bound to `mesh` (no `gateways` means that), the ingress gateway
    where one is bound to a Gateway. Asking the client side for an edge-only route would hold
    every ingress rollout on "serves no route", which is how Istio is meant to behave."""
    bound = {
        str(gateway)
        for body in objects
        if body.get("kind") == "VirtualService"
        for gateway in ((body.get("spec") or {}).get("gateways") or ["mesh"])
    }
    found = [mesh.admin_url] if "mesh" in bound or not bound else []
    if mesh.gateway is not None and bound - {"mesh"}:
        found.append(mesh.gateway.admin_url)
    return found


class _MeshPrometheus:
    """On the local mesh a template's Prometheus is the mesh's own: its series are there, and
    the address a policy names (a cluster's) is not reachable from here. Said once per
    address, so nobody takes the demo for a test of that address."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self.metrics = metrics
        self._said: set[str] = set()

    def __call__(self, backend: PrometheusProvider, namespace: str) -> PrometheusMetrics:
        if backend.address not in self._said:
            self._said.add(backend.address)
            log.info(
                "demo.prometheus_replaced", asked=backend.address, answered_by=self.metrics.url
            )
        return self.metrics
