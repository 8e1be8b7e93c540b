"""The demo's objects: a service `demo` with subsets v1 and v2, and the Canary that moves it.

The VirtualService and DestinationRule are what a user of Istio would write (a named route,
subsets by the `version` label, outlier detection on the host); the Canary is sized so a whole
rollout fits in about a minute on a laptop while every step is still judged on real requests.

The slow-traces scenario adds a trace SLO: the users browse (`GET /browse`) and sometimes check
out (`POST /checkout`); v2 makes a few checkouts slow, few enough and short enough that the
service's p99 over all requests stays within its budget, and a MetricTemplate judging the p99
of v2's `POST /checkout` spans in the local Jaeger catches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from canary.api import istio
from canary.api.people import Decision
from canary.api.resources import Canary
from canary.api.status import CanaryStatus
from canary.demo import comparing, mtls
from canary.ports import CanaryKey

NAMESPACE = "default"
SERVICE = "demo"
ROUTE = "primary"


class Scenario(StrEnum):
    GOOD = "good"
    BAD = "bad"
    # A healthy v2 with a fault experiment at 25%: one v2 pod goes bad, the DestinationRule's
    # outlier detection ejects it, users barely notice, the experiment passes, v2 is promoted.
    CHAOS = "chaos"
    # The same experiment with outlier detection taken out of the DestinationRule: nothing is
    # ejected, users keep failing, the experiment fails, and v2 is rolled back although it was
    # only one bad pod and the metrics of v2 as released were fine.
    CHAOS_UNPROTECTED = "chaos-unprotected"
    # v2 slows a share of POST /checkout down; the overall p99 passes, the trace SLO on that
    # operation fails, and v2 is rolled back.
    SLOW_TRACES = "slow-traces"
    # The same v2 and the same SLO judged from span metrics in Prometheus instead (the built-in
    # trace-duration, over the spanmetrics connector's histogram): the same verdict.
    SLOW_TRACES_METRICS = "slow-traces-metrics"
    # The good rollout in a STRICT namespace with ISTIO_MUTUAL in the DestinationRule, while a
    # plaintext caller outside the mesh is refused by the canary's sidecar (demo/mtls.py).
    MTLS_STRICT = "mtls-strict"
    # The good v2 rolled out at the edge: users call shop.example.test over HTTPS through the
    # mesh's ingress gateway, whose VirtualService the Canary manages (ingress.py).
    INGRESS = "ingress"
    # v1 fails 1% of requests, v2 3%: both above a min: 95 line, and the comparison with
    # stable proves v2 worse; rolled back (comparing.py).
    SUBTLE = "subtle"
    # v1 and v2 both fail 2%: the comparison finds v2 no worse and it is promoted, while a
    # min: 99 line, judged beside it as a dry run, would have rolled it back (comparing.py).
    NOISY = "noisy"

    @property
    def chaos(self) -> bool:
        return self in (Scenario.CHAOS, Scenario.CHAOS_UNPROTECTED)

    @property
    def traced(self) -> bool:
        return self in (Scenario.SLOW_TRACES, Scenario.SLOW_TRACES_METRICS)

    @property
    def compares(self) -> bool:
        return self in (Scenario.SUBTLE, Scenario.NOISY)


@dataclass(frozen=True, slots=True)
class Expected:
    phase: str
    canary_weight: int
    # For a scenario that compares with stable: whether the comparison must have proven a
    # regression (the reason for its rollback), or must not have (its promotion); None for the
    # others.
    regression: bool | None = None


EXPECTED = {
    Scenario.GOOD: Expected(phase="Succeeded", canary_weight=100),
    Scenario.BAD: Expected(phase="Failed", canary_weight=0),
    Scenario.CHAOS: Expected(phase="Succeeded", canary_weight=100),
    Scenario.CHAOS_UNPROTECTED: Expected(phase="Failed", canary_weight=0),
    Scenario.SLOW_TRACES: Expected(phase="Failed", canary_weight=0),
    Scenario.SLOW_TRACES_METRICS: Expected(phase="Failed", canary_weight=0),
    Scenario.MTLS_STRICT: Expected(phase="Succeeded", canary_weight=100),
    Scenario.INGRESS: Expected(phase="Succeeded", canary_weight=100),
    Scenario.SUBTLE: Expected(phase="Failed", canary_weight=0, regression=True),
    Scenario.NOISY: Expected(phase="Succeeded", canary_weight=100, regression=False),
}

# The slow-traces scenario, tuned so the verdict is right for the right reason. A fifth of the
# requests are checkouts, and v2 adds SLOW_MS to SLOW_RATE of them: one v2 request in fifty is
# slow. The built-in request-duration check is a histogram_quantile over Envoy's buckets (...,
# 100, 250, 500, ...): a slow checkout (~205 ms) lands in the (100, 250] bucket, so v2's p99 over
# all requests stays at or under 250 ms, whatever the window holds, within the 500 ms budget with
# room for a stalled machine. The trace SLO wants the p99 of v2's checkout spans under
# CHECKOUT_P99_MS: a healthy checkout takes ~10-20 ms, a slow one over 200, and with fewer than a
# hundred spans in the window the p99 (nearest rank) is the slowest span, so one slow checkout
# fails it. Over the three steps v2 gets about eight slow checkouts on average (40 req/s x 1/5 x
# 0.1 x (0.10 + 0.25 + 0.50) x 12 s); none at all, which would promote v2, has odds of ~1/3500.
TRACE_OPERATION = "POST /checkout"
SLOW_PATH = "/checkout"
SLOW_MS = 200.0
SLOW_RATE = 0.1
# Requests per round of the load: (method, path, weight); a checkout carries a small body.
TRACE_MIX = (("GET", "/browse", 4), ("POST", "/checkout", 1))
CHECKOUT_BODY = b'{"items": ["tea"]}'
CHECKOUT_P99_MS = 150
TRACE_TEMPLATE = "checkout-latency"
TRACE_CHECK = "checkout-p99"
SPAN_METRICS_CHECK = "trace-duration"
# How far back a trace check looks, how many of v2's checkout spans it needs there, and how long
# it may wait for them within a step before no data fails it. At the first step (10%) v2 gets
# about 0.8 checkouts a second, and a span reaches Jaeger up to ~5 s after its request: five
# spans are there ~10 s into the step, a full window holds ~16. The wait is longer than the
# step, so a slow start of the spans is never taken for a failure.
TRACE_WINDOW = "20s"
TRACE_MIN_SPANS = 5
TRACE_NO_DATA_TIMEOUT = "30s"
# A placeholder until the mesh's Jaeger runs; the demo puts the real query URL in its place.
LOCAL_JAEGER = "http://127.0.0.1:16686"

# The demo's experiment: one of the two v2 pods goes bad (503 to every request) for 10 s at the
# 25% step. At the demo's load that pod sees about five requests a second, so the callers'
# outlier detection (five 5xx in a row) can take it out of their pool within a second or two,
# after which the other v2 pod serves v2's share: users see a short blip. Without outlier
# detection the bad pod keeps its share for the whole fault, and an eighth of all requests fail.
EXPERIMENT: dict[str, Any] = {
    "name": "bad-pod",
    "atWeight": 25,
    "duration": "10s",
    "pods": 1,
    "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
    "expect": {"ejection": True, "successRate": 95},
    "onFailure": "rollback",
}


def virtual_service() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {
            "hosts": [SERVICE],
            "http": [
                {
                    "name": ROUTE,
                    "route": [
                        {"destination": {"host": SERVICE, "subset": "v1"}, "weight": 100},
                        {"destination": {"host": SERVICE, "subset": "v2"}, "weight": 0},
                    ],
                }
            ],
        },
    }


def destination_rule(*, outlier_detection: bool = True) -> dict[str, Any]:
    rule = _destination_rule()
    if not outlier_detection:
        del rule["spec"]["trafficPolicy"]["outlierDetection"]
    return rule


def _destination_rule() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {
            "host": SERVICE,
            "trafficPolicy": {
                "connectionPool": {"http": {"http1MaxPendingRequests": 100}},
                "outlierDetection": {
                    "consecutive5xxErrors": 5,
                    "interval": "5s",
                    "baseEjectionTime": "15s",
                    "maxEjectionPercent": 50,
                },
            },
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }


def canary(
    *,
    step_seconds: int = 12,
    check_seconds: int = 2,
    chaos: bool = False,
    approval: bool = False,
    traced: bool = False,
    span_metrics: bool = False,
) -> dict[str, Any]:
    """`traced`: judge v2's checkout spans too, from Jaeger, or from span metrics in
    Prometheus (the built-in trace-duration) with `span_metrics`."""
    body = _canary(step_seconds=step_seconds, check_seconds=check_seconds)
    source: dict[str, Any] = (
        {"name": SPAN_METRICS_CHECK, "templateVariables": {"operation": TRACE_OPERATION}}
        if span_metrics
        else {"name": TRACE_CHECK, "templateRef": {"name": TRACE_TEMPLATE}}
    )
    if traced:
        body["spec"]["analysis"]["metrics"].append(
            {
                **source,
                "thresholdRange": {"max": CHECKOUT_P99_MS},
                "interval": TRACE_WINDOW,
                "onNoData": "wait",
                "noDataTimeout": TRACE_NO_DATA_TIMEOUT,
            }
        )
    if chaos:
        body["spec"]["chaos"] = [dict(EXPERIMENT)]
    if approval:
        # The last step holds, judged all the while, until a person decides.
        body["spec"]["approvals"] = {"before": ["promotion"]}
    return body


def _canary(*, step_seconds: int, check_seconds: int) -> dict[str, Any]:
    window = f"{step_seconds}s"
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {
            "service": {"host": SERVICE, "route": ROUTE},
            "stable": {"subset": "v1", "labels": {"version": "v1"}},
            "canary": {"subset": "v2", "labels": {"version": "v2"}},
            "progressDeadline": "1m",
            "analysis": {
                "interval": f"{step_seconds}s",
                "checkInterval": f"{check_seconds}s",
                "threshold": 2,
                "stepWeights": [10, 25, 50],
                "metrics": [
                    {
                        "name": "request-success-rate",
                        "thresholdRange": {"min": 99},
                        "interval": window,
                        "minRequests": 10,
                        "onNoData": "wait",
                    },
                    {
                        "name": "request-duration",
                        "thresholdRange": {"max": 500},
                        "interval": window,
                        "onNoData": "wait",
                    },
                ],
            },
        },
    }


def trace_template(address: str = LOCAL_JAEGER) -> dict[str, Any]:
    """The trace SLO: the p99 of one version's `POST /checkout` spans in Jaeger, in ms.

    The spans are the inbound Envoys' server spans: their service is the Canary's (`{{ service
    }}`, the default), and each carries its version's subset as the `subset` tag.
    """
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": TRACE_TEMPLATE, "namespace": NAMESPACE},
        "spec": {
            "provider": {
                "jaeger": {
                    "address": address,
                    "operation": TRACE_OPERATION,
                    "versionTag": "subset",
                    "versionValue": "{{ subset }}",
                    "compute": "latency",
                    "percentile": 99,
                    "minSpans": TRACE_MIN_SPANS,
                    "timeout": "5s",
                }
            }
        },
    }


def objects(
    chosen: Scenario = Scenario.GOOD, *, approval: bool = False, jaeger: str = LOCAL_JAEGER
) -> list[dict[str, Any]]:
    """The scenario's objects; `jaeger` is the address of the trace template, if it has one."""
    rollout = canary(
        step_seconds=comparing.STEP_SECONDS if chosen.compares else 12,
        chaos=chosen.chaos,
        approval=approval,
        traced=chosen.traced,
        span_metrics=chosen is Scenario.SLOW_TRACES_METRICS,
    )
    found = [
        virtual_service(),
        destination_rule(outlier_detection=chosen is not Scenario.CHAOS_UNPROTECTED),
        comparing.compared(rollout, dry_run_line=chosen is Scenario.NOISY)
        if chosen.compares
        else rollout,
    ]
    if chosen is Scenario.NOISY:
        found.append(comparing.success_rate_template(NAMESPACE))
    if chosen.traced:
        found.append(trace_template(jaeger))
    if chosen is Scenario.MTLS_STRICT:
        found = mtls.strict(found, NAMESPACE)
    return found


def traced(bodies: list[dict[str, Any]]) -> bool:
    """Whether any of the objects is a MetricTemplate asking Jaeger (the mesh must run one)."""
    return any(
        "jaeger" in (((body.get("spec") or {}).get("provider")) or {})
        for body in bodies
        if body.get("kind") == "MetricTemplate"
    )


def expected(chosen: Scenario, status: CanaryStatus) -> Expected:
    """What the scenario should end in; a person's reject at an approval gate rolls back."""
    if status.approvals and status.approvals[-1].decision is Decision.REJECTED:
        return Expected(phase="Failed", canary_weight=0)
    return EXPECTED[chosen]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the mesh must provide for the Canary: its service and the two versions' pods."""

    key: CanaryKey
    service: str
    stable_version: str
    canary_version: str
    stable_subset: str = "v1"
    canary_subset: str = "v2"


def plan(bodies: list[dict[str, Any]]) -> Plan:
    canaries = [Canary.model_validate(b) for b in bodies if b.get("kind") == "Canary"]
    if len(canaries) != 1:
        raise ValueError(f"the demo runs exactly one Canary; the policy has {len(canaries)}")
    found = canaries[0]
    return Plan(
        key=CanaryKey(found.metadata.namespace or NAMESPACE, found.metadata.name),
        service=found.spec.service.host.split(".")[0],
        stable_version=found.spec.stable.version,
        canary_version=found.spec.canary.version,
        stable_subset=found.spec.stable.subset,
        canary_subset=found.spec.canary.subset,
    )


def complete(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The policy's objects, plus a VirtualService and DestinationRule for its Canary when the
    policy has none: the two subsets by their `version` label, stable holding all traffic."""
    found = plan(bodies)
    spec = next(Canary.model_validate(b) for b in bodies if b.get("kind") == "Canary").spec
    kinds = {b.get("kind") for b in bodies}
    added: list[dict[str, Any]] = []
    namespace = found.key.namespace
    # Named from another namespace (spec.service.*Namespace), the host is written in full.
    full_host = istio.fqdn(spec.service.host, namespace)
    if "VirtualService" not in kinds:
        vs = virtual_service()
        vs_namespace, vs_name = spec.service.virtual_service_key(namespace)
        host = spec.service.host if vs_namespace == namespace else full_host
        vs["metadata"] = {"name": vs_name, "namespace": vs_namespace}
        vs["spec"]["hosts"] = [host]
        route = vs["spec"]["http"][0]
        route["name"] = spec.service.route or ROUTE
        for destination, variant in zip(route["route"], (spec.stable, spec.canary), strict=True):
            destination["destination"] = {"host": host, "subset": variant.subset}
        added.append(vs)
    if "DestinationRule" not in kinds:
        dr = destination_rule()
        dr_namespace, dr_name = spec.service.destination_rule_key(namespace)
        dr["metadata"] = {"name": dr_name, "namespace": dr_namespace}
        dr["spec"]["host"] = spec.service.host if dr_namespace == namespace else full_host
        dr["spec"]["subsets"] = [
            {"name": variant.subset, "labels": {"version": variant.version}}
            for variant in (spec.stable, spec.canary)
        ]
        added.append(dr)
    return [*bodies, *added]
