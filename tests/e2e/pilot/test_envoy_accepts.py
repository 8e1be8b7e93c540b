"""Envoy 1.40 itself accepts what the Pilot writes, for every field the Pilot translates.

The unit tests check the Pilot's output against what istiod writes; only Envoy can say whether
the field names and values are valid for it. `envoy --mode validate` checks a bootstrap fully
(clusters, routes, typed configs) without serving, so the translated resources are embedded in
a static bootstrap: every Bookinfo sample that translates, and one VirtualService and one
DestinationRule that use every supported field at once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from canary.localmesh import pilot
from tests.e2e.pilot.conftest import envoy_binary
from tests.unit.localmesh.pilot.objects import (
    bookinfo_workloads,
    demo_workloads,
    destination_rule,
    sample,
    sample_names,
    to,
    virtual_service,
)

Json = dict[str, Any]

EVERY_ROUTE_FIELD = [
    {
        "name": "everything",
        "match": [
            {
                "name": "api",
                "uri": {"prefix": "/api"},
                "headers": {"x-a": {"exact": "1"}, "x-b": {"regex": "v[0-9]"}, "x-c": {}},
                "withoutHeaders": {"x-d": {"prefix": "no"}},
                "queryParams": {"q": {"exact": "1"}},
                "method": {"exact": "GET"},
                "authority": {"prefix": "demo"},
                "scheme": {"exact": "http"},
                "ignoreUriCase": True,
                "port": 80,
                "gateways": ["mesh"],
                "sourceNamespace": "default",
                "statPrefix": "api",
            },
            {"uri": {"regex": "/r/[a-z]+"}},
        ],
        "route": [
            {
                "destination": {"host": "demo", "subset": "v1", "port": {"number": 80}},
                "weight": 70,
                "headers": {"request": {"set": {"x-to": "v1", "host": "v1.demo"}}},
            },
            {
                "destination": {"host": "demo.default.svc.cluster.local", "subset": "v2"},
                "weight": 30,
                "headers": {"response": {"add": {"x-from": "v2"}, "remove": ["x-drop"]}},
            },
        ],
        "timeout": "2.5s",
        "retries": {
            "attempts": 3,
            "perTryTimeout": "500ms",
            "retryOn": "5xx,gateway-error,503",
            "retryRemoteLocalities": True,
            "retryIgnorePreviousHosts": True,
            "backoff": "25ms",
        },
        "fault": {
            "delay": {"fixedDelay": "1ms", "percentage": {"value": 0.5}},
            "abort": {"httpStatus": 503, "percentage": {"value": 0.1}},
        },
        "mirror": {"host": "demo", "subset": "v3"},
        "mirrorPercentage": {"value": 5},
        "mirrors": [{"destination": {"host": "demo", "subset": "v2"}, "percentage": {"value": 1}}],
        "headers": {
            "request": {"set": {"x-s": "1"}, "add": {"x-a": "2"}, "remove": ["x-r"]},
            "response": {"set": {"x-t": "1"}},
        },
        "rewrite": {"uriRegexRewrite": {"match": "^/api/(.*)", "rewrite": "/\\1"}},
    },
    {
        "match": [{"uri": {"exact": "/old"}}],
        "redirect": {"uri": "/new", "authority": "demo", "scheme": "https", "port": 8443},
    },
    {
        "match": [{"uri": {"exact": "/moved"}}],
        "redirect": {"uri": "/here", "derivePort": "FROM_REQUEST_PORT", "redirectCode": 308},
    },
    {"match": [{"uri": {"exact": "/gone"}}], "directResponse": {"status": 410}},
    {
        "match": [{"uri": {"exact": "/hello"}}],
        "directResponse": {"status": 200, "body": {"string": "hello"}},
    },
    {
        "match": [{"uri": {"prefix": "/rw"}}],
        "rewrite": {"uri": "/", "authority": "rewritten"},
        "retries": {"attempts": 0},
        "route": to(("v1", None)),
    },
    {"route": to(("v1", 100), ("v2", 0))},
]

EVERY_POLICY_FIELD = {
    "connectionPool": {
        "tcp": {
            "maxConnections": 100,
            "connectTimeout": "250ms",
            "maxConnectionDuration": "1h",
            "idleTimeout": "5m",
            "tcpKeepalive": {"probes": 3, "time": "2h", "interval": "75s"},
        },
        "http": {
            "http1MaxPendingRequests": 10,
            "http2MaxRequests": 100,
            "maxRequestsPerConnection": 5,
            "maxRetries": 3,
            "idleTimeout": "30s",
            "h2UpgradePolicy": "DO_NOT_UPGRADE",
            "useClientProtocol": False,
        },
    },
    "outlierDetection": {
        "consecutive5xxErrors": 5,
        "consecutiveGatewayErrors": 3,
        "interval": "10s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 50,
        "minHealthPercent": 10,
        "splitExternalLocalOriginErrors": True,
        "consecutiveLocalOriginFailures": 2,
    },
    "loadBalancer": {"simple": "ROUND_ROBIN", "warmupDurationSecs": "30s"},
    "tls": {"mode": "DISABLE"},
    "portLevelSettings": [{"port": {"number": 80}, "loadBalancer": {"simple": "LEAST_REQUEST"}}],
}


def _static(resource: Json) -> Json:
    """A resource as it sits in a bootstrap, where its type is known and `@type` is not allowed."""
    return {key: value for key, value in resource.items() if key != "@type"}


def _validate(resources: pilot.EnvoyResources, workdir: Path) -> None:
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "outbound",
        "route_config": _static(resources.route_configuration),
        "http_filters": [
            {
                "name": "envoy.filters.http.fault",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    config = {
        "static_resources": {
            "listeners": [
                {
                    "name": "outbound",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15001}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [_static(cluster) for cluster in resources.clusters],
        }
    }
    path = workdir / "validate.json"
    path.write_text(json.dumps(config, indent=1))
    done = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_every_supported_field_at_once_is_valid_envoy_config(tmp_path: Path) -> None:
    routes = virtual_service(*EVERY_ROUTE_FIELD)
    rules = destination_rule(subsets=("v1", "v2", "v3"), trafficPolicy=EVERY_POLICY_FIELD)
    rules["spec"]["subsets"][1]["trafficPolicy"] = {
        "loadBalancer": {"simple": "RANDOM"},
        "outlierDetection": {"consecutive5xxErrors": 1},
    }
    workloads = demo_workloads("v1", "v2", "v3", per_version=2)
    _validate(pilot.translate([routes], [rules], workloads), tmp_path)


@pytest.mark.parametrize(
    "name",
    [n for n in sample_names() if n.startswith(("virtual-service", "destination-rule-all."))],
)
def test_bookinfo_translations_are_valid_envoy_config(name: str, tmp_path: Path) -> None:
    documents = sample(name)
    rules = [d for d in sample("destination-rule-all.yaml") if d["kind"] == "DestinationRule"]
    services = [d for d in documents if d["kind"] == "VirtualService"]
    resources = pilot.translate(services, rules, bookinfo_workloads(), port=9080)
    _validate(resources, tmp_path)
