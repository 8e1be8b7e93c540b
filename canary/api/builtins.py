"""The built-in checks, `request-success-rate` (percent) and `request-duration` (p99, ms).

Each comes as two query sets: one for Istio's standard metrics (what a cluster with Istio
telemetry exports) and one for plain Envoy stats (what the local mesh's Envoys export, and what a
mesh without Istio telemetry has). Every built-in also has a request-count query, so a
`minRequests` guard works without the user writing one.

The Envoy set relies on Istio's cluster naming, `outbound|<port>|<subset>|<host>`, which the
local mesh's Pilot uses too. PromQL has no way to escape `|` in a regex short of `\\|`, so the
patterns use `[|]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class QuerySet(StrEnum):
    ISTIO = "istio"
    ENVOY = "envoy"


@dataclass(frozen=True, slots=True)
class BuiltinQuery:
    query: str
    requests: str
    unit: str


SUCCESS_RATE = "request-success-rate"
DURATION = "request-duration"
NAMES = frozenset({SUCCESS_RATE, DURATION})

_ISTIO_SELECTOR = (
    'reporter="destination",destination_workload_namespace="{{ namespace }}",'
    'destination_service_name="{{ service }}",destination_version="{{ version }}"'
)
_ENVOY_SELECTOR = 'envoy_cluster_name=~"outbound[|][0-9]+[|]{{ subset }}[|]{{ service }}([.].*)?"'

_ISTIO_REQUESTS = f"sum(increase(istio_requests_total{{{_ISTIO_SELECTOR}}}[{{{{ interval }}}}]))"
_ENVOY_REQUESTS = (
    f"sum(increase(envoy_cluster_upstream_rq_xx{{{_ENVOY_SELECTOR}}}[{{{{ interval }}}}]))"
)

QUERIES: dict[QuerySet, dict[str, BuiltinQuery]] = {
    QuerySet.ISTIO: {
        SUCCESS_RATE: BuiltinQuery(
            query=(
                f'100 * sum(rate(istio_requests_total{{{_ISTIO_SELECTOR},response_code!~"5.."}}'
                f"[{{{{ interval }}}}])) / sum(rate(istio_requests_total{{{_ISTIO_SELECTOR}}}"
                f"[{{{{ interval }}}}]))"
            ),
            requests=_ISTIO_REQUESTS,
            unit="percent",
        ),
        DURATION: BuiltinQuery(
            query=(
                "histogram_quantile(0.99, sum by (le) (rate("
                f"istio_request_duration_milliseconds_bucket{{{_ISTIO_SELECTOR}}}"
                "[{{ interval }}])))"
            ),
            requests=_ISTIO_REQUESTS,
            unit="milliseconds",
        ),
    },
    QuerySet.ENVOY: {
        SUCCESS_RATE: BuiltinQuery(
            query=(
                "100 * sum(rate(envoy_cluster_upstream_rq_xx{"
                f'{_ENVOY_SELECTOR},envoy_response_code_class!="5"}}[{{{{ interval }}}}])) / '
                f"sum(rate(envoy_cluster_upstream_rq_xx{{{_ENVOY_SELECTOR}}}[{{{{ interval }}}}]))"
            ),
            requests=_ENVOY_REQUESTS,
            unit="percent",
        ),
        DURATION: BuiltinQuery(
            query=(
                "histogram_quantile(0.99, sum by (le) (rate("
                f"envoy_cluster_upstream_rq_time_bucket{{{_ENVOY_SELECTOR}}}[{{{{ interval }}}}])))"
            ),
            requests=_ENVOY_REQUESTS,
            unit="milliseconds",
        ),
    },
}


@dataclass(frozen=True, slots=True)
class ChaosQueries:
    """What a chaos verdict reads, at the callers, over the fault window.

    Each is a template with `namespace`, `service`, `subset`, `version`, `window` (e.g. `20s`),
    `start` and `at` (the window's ends, Unix seconds, for PromQL's `@`): the verdict is read a
    little after the fault ended, and must see the fault's window, not the recovery after it.
    """

    requests: str
    errors: str
    ejections: str
    overflow: str
    success_rate: str


def _window(expression: str) -> str:
    """How much the counters of `expression` grew in the window, all series summed.

    Not `increase()`: Envoy creates a response-class counter at its first response of that
    class, and `increase()` takes a series' first sample as its start, so the 5xx a fault
    causes in its first second (often all it causes, once outlier detection ejects the host)
    would count as none, and a success rate would come out too high. The sum at the end less
    the sum at the start (none there: 0) counts a new series from zero.
    """
    at_end = f"sum(last_over_time({expression}[{{{{ window }}}}] @ {{{{ at }}}}))"
    at_start = f"sum(last_over_time({expression}[{{{{ window }}}}] @ {{{{ start }}}}))"
    return f"clamp_min({at_end} - ({at_start} or vector(0)), 0)"


# The callers' view in a cluster: Istio's standard metric as the source reports it (after its
# retries), and the callers' Envoy cluster stats, which Istio names `cluster_name`. Istio exports
# those two Envoy stats only when the mesh's proxyStatsMatcher includes them.
_ISTIO_SOURCE = (
    'reporter="source",destination_workload_namespace="{{ namespace }}",'
    'destination_service_name="{{ service }}"'
)
_ISTIO_CANARY = f'{_ISTIO_SOURCE},destination_version="{{{{ version }}}}"'
_ISTIO_CLUSTER = 'cluster_name=~"outbound[|][0-9]+[|]{{ subset }}[|]{{ service }}([.].*)?"'
_NOT_5XX = 'envoy_response_code_class!="5"'
_ENVOY_ALL = 'envoy_cluster_name=~"outbound[|][0-9]+[|][^|]*[|]{{ service }}([.].*)?"'

CHAOS: dict[QuerySet, ChaosQueries] = {
    QuerySet.ISTIO: ChaosQueries(
        requests=_window(f"istio_requests_total{{{_ISTIO_CANARY}}}"),
        errors=_window(f'istio_requests_total{{{_ISTIO_CANARY},response_code=~"5.."}}'),
        ejections=_window(
            f"envoy_cluster_outlier_detection_ejections_enforced_total{{{_ISTIO_CLUSTER}}}"
        ),
        overflow=_window(f"envoy_cluster_upstream_rq_pending_overflow{{{_ISTIO_CLUSTER}}}"),
        success_rate=(
            "100 * "
            + _window(f'istio_requests_total{{{_ISTIO_SOURCE},response_code!~"5.."}}')
            + " / "
            + _window(f"istio_requests_total{{{_ISTIO_SOURCE}}}")
        ),
    ),
    QuerySet.ENVOY: ChaosQueries(
        requests=_window(f"envoy_cluster_upstream_rq_xx{{{_ENVOY_SELECTOR}}}"),
        errors=_window(
            f'envoy_cluster_upstream_rq_xx{{{_ENVOY_SELECTOR},envoy_response_code_class="5"}}'
        ),
        ejections=_window(
            f"envoy_cluster_outlier_detection_ejections_enforced_total{{{_ENVOY_SELECTOR}}}"
        ),
        overflow=_window(f"envoy_cluster_upstream_rq_pending_overflow{{{_ENVOY_SELECTOR}}}"),
        success_rate=(
            "100 * "
            + _window(f"envoy_cluster_upstream_rq_xx{{{_ENVOY_ALL},{_NOT_5XX}}}")
            + " / "
            + _window(f"envoy_cluster_upstream_rq_xx{{{_ENVOY_ALL}}}")
        ),
    ),
}
