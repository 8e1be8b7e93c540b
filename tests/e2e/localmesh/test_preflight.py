"""Preflight against the real local mesh: its Envoys' admin (routes and /stats) and its
Prometheus (the series question), with the mesh's app instances as the pods.

One mesh, one instance per version, pushed twice: first with outlier detection in the
DestinationRule (every item passes once Prometheus has scraped the stable), then without it,
when Envoy has no ejection counter for the canary's cluster (and the item says so).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from canary.adapters.envoy_admin import EnvoyAdmin
from canary.adapters.prometheus import PrometheusMetrics
from canary.api import builtins
from canary.api.metric_template import MetricTemplate
from canary.api.spec import CanarySpec
from canary.controller import preflight
from canary.controller.observe import route_of
from canary.controller.sources import PromQL, Sources
from canary.engine.observation import Traffic
from canary.engine.preflight import ItemState, PreflightItem
from canary.fakes import FakeSecrets, FakeWebhooks
from canary.localmesh import mesh
from canary.localmesh.pods import LocalPods
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey

SERVICE = "demo"
KEY = CanaryKey("default", SERVICE)
OUTLIER = {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "30s"}


def _objects(outlier: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    route = [
        {"destination": {"host": SERVICE, "subset": "v1"}, "weight": 100},
        {"destination": {"host": SERVICE, "subset": "v2"}, "weight": 0},
    ]
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": SERVICE, "namespace": "default"},
        "spec": {"hosts": [SERVICE], "http": [{"name": "primary", "route": route}]},
    }
    dr: dict[str, Any] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": SERVICE, "namespace": "default"},
        "spec": {
            "host": SERVICE,
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }
    if outlier:
        dr["spec"]["trafficPolicy"] = {"outlierDetection": OUTLIER}
    return vs, dr


def _spec(metrics: list[dict[str, Any]], expect: dict[str, bool] | None = None) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": SERVICE, "route": "primary"},
            # No labels: the local mesh's pods answer from the DestinationRule's subsets.
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {"stepWeights": [10], "metrics": metrics},
            "chaos": [
                {
                    "name": "eject",
                    "atWeight": 10,
                    "duration": "10s",
                    "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
                    "expect": expect or {"ejection": True},
                }
            ],
        }
    )


class _Templates:
    """The store the metric checks' templates come from: the one template of this test."""

    def __init__(self, template: MetricTemplate) -> None:
        self.template = template

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        return self.template if name == self.template.metadata.name else None


def _gather(
    local: mesh.LocalMesh, store: LocalStore, spec: CanarySpec, templates: _Templates
) -> dict[str, PreflightItem]:
    prometheus = PrometheusMetrics(local.prometheus_url)
    sources = Sources(
        builtin=prometheus,
        webhooks=FakeWebhooks(),
        secrets=FakeSecrets(),
        metrics={type(templates.template.spec.provider.backend): lambda b, n: PromQL(prometheus)},
    )
    context = preflight.Context(
        KEY,
        spec,
        route_of(KEY, spec),
        Traffic({"v1": 100, "v2": 0}, applied=True),
        preflight.Preflight(
            pods=LocalPods(store, local), proxies=EnvoyAdmin([local.admin_url]), tls=store
        ),
        templates,  # type: ignore[arg-type]
        sources,
        builtins.QuerySet.ENVOY,
    )
    return {item.name: item for item in preflight.gather(context)}


def _wait_applied(local: mesh.LocalMesh, version: int) -> None:
    deadline = time.monotonic() + 10
    while (local.applied_version() or 0) < version and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local.applied_version() == version


def test_preflight_on_the_real_mesh(
    tmp_path: Path, envoy_path: Path, prometheus_path: Path
) -> None:
    versions = [mesh.VersionSpec("v1"), mesh.VersionSpec("v2")]
    store = LocalStore(tmp_path / "state")
    template = MetricTemplate.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "MetricTemplate",
            "metadata": {"name": "wrong-label", "namespace": "default"},
            "spec": {
                "provider": {"prometheus": {"address": "http://prometheus:9090"}},
                "query": 'sum(envoy_cluster_upstream_rq_xx{envoy_cluster_name="no-such-cluster"})',
            },
        }
    )
    templates = _Templates(template)
    good = _spec([{"name": "request-success-rate", "thresholdRange": {"min": 99}}])
    with mesh.LocalMesh(
        service=SERVICE,
        versions=versions,
        workdir=tmp_path / "mesh",
        rate=20,
        duration=60,
        instances_per_version=1,
    ) as local:
        vs, dr = _objects(outlier=True)
        store.put(dr)
        _wait_applied(local, local.push([vs], [dr]))
        items: dict[str, PreflightItem] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            items = _gather(local, store, good, templates)
            if items["metric series"].state is ItemState.OK:
                break
            time.sleep(0.5)
        assert {name: item.state for name, item in items.items()} == {
            "sidecars": ItemState.OK,
            "callers' proxies": ItemState.OK,
            "metric series": ItemState.OK,
            "chaos stats": ItemState.OK,
            "mtls": ItemState.OK,
        }, items
        assert items["sidecars"].seen == "ready pods with the sidecar: v1 1/1, v2 1/1"
        assert items["callers' proxies"].seen == "1 proxy(ies) serve {v1: 100}"

        # A template whose selector matches nothing is a failure naming the selector.
        errors = {"name": "errors", "templateRef": {"name": "wrong-label"}}
        wrong = _spec([{**errors, "thresholdRange": {"max": 1}}])
        series = _gather(local, store, wrong, templates)["metric series"]
        assert series.state is ItemState.FAILED
        assert 'envoy_cluster_upstream_rq_xx{envoy_cluster_name="no-such-cluster"}' in series.seen

        # Without outlier detection the callers' Envoy has no ejection counter for v2, though
        # v2's cluster stats are there: said, and left for the experiment to find out.
        vs, dr = _objects(outlier=False)
        store.put(dr)
        _wait_applied(local, local.push([vs], [dr]))
        chaos = _gather(local, store, good, templates)["chaos stats"]
        assert chaos.state is ItemState.OK, chaos
        assert "no outlier detection on subset v2's cluster" in chaos.seen
        # ... while overflow, a counter of every exported cluster, is there.
        overflow = _spec([], {"ejection": False, "overflow": True})
        assert _gather(local, store, overflow, templates)["chaos stats"].seen == (
            "exported by 1 proxy(ies)"
        )

        # An instance that died is no ready pod: v2 then has none to check.
        v2 = next(instance for instance in local.instances if instance.version == "v2")
        v2.app.stop()
        sidecars = _gather(local, store, good, templates)["sidecars"]
        assert sidecars.seen == "ready pods with the sidecar: v1 1/1, v2: no ready pod to check"
