"""The built-in checks: `request-success-rate` (percent) and `request-duration` (p99, ms) of a
version's requests, and the same two per operation from span metrics, `trace-error-rate`
(percent of error spans) and `trace-duration` (p99 of span durations, ms), with the operation
(span name) in the check's `templateVariables.operation`.

Each comes as two query sets: one for Istio's standard metrics (what a cluster with Istio
telemetry exports) and one for plain Envoy stats (what the local mesh's Envoys export, and what a
mesh without Istio telemetry has). Every built-in also has a request-count query, so a
`minRequests` guard works without the user writing one, and a pair of cumulative counts
(`COUNTS`: requests and bad events) that a check comparing with stable is judged on.

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
TRACE_ERROR_RATE = "trace-error-rate"
TRACE_DURATION = "trace-duration"
NAMES = frozenset({SUCCESS_RATE, DURATION, TRACE_ERROR_RATE, TRACE_DURATION})
# The built-ins that measure latency: compared with stable as the share over a bucket bound.
LATENCY = frozenset({DURATION, TRACE_DURATION})
# The built-ins that judge one operation: their check must say which in templateVariables.
PER_OPERATION = frozenset({TRACE_ERROR_RATE, TRACE_DURATION})
OPERATION = "operation"

_ISTIO_SELECTOR = (
    'reporter="destination",destination_workload_namespace="{{ namespace }}",'
    'destination_service_name="{{ service }}",destination_version="{{ version }}"'
)
_ENVOY_SELECTOR = 'envoy_cluster_name=~"outbound[|][0-9]+[|]{{ subset }}[|]{{ service }}([.].*)?"'

_ISTIO_REQUESTS = f"sum(increase(istio_requests_total{{{_ISTIO_SELECTOR}}}[{{{{ interval }}}}]))"
_ENVOY_REQUESTS = (
    f"sum(increase(envoy_cluster_upstream_rq_xx{{{_ENVOY_SELECTOR}}}[{{{{ interval }}}}]))"
)

# Span metrics, as the OpenTelemetry collector's spanmetrics connector makes them (Jaeger v2 is
# such a collector) and its Prometheus exporter names them: calls by service_name, span_name,
# span_kind and status_code, durations as a histogram in milliseconds, and each configured
# dimension as a label (dots become underscores). The server side's spans count: a request's
# client-side span would count it twice. Istio names a sidecar's spans `<app>.<namespace>` and
# tags them istio.canonical_revision (a dimension the connector must be given); the local
# mesh's inbound Envoys name them after the service and tag them `subset`.
_SPANS_ISTIO = (
    'service_name="{{ service }}.{{ namespace }}",span_name="{{ operation }}",'
    'span_kind="SPAN_KIND_SERVER",istio_canonical_revision="{{ version }}"'
)
_SPANS_ENVOY = (
    'service_name="{{ service }}",span_name="{{ operation }}",span_kind="SPAN_KIND_SERVER",'
    'subset="{{ subset }}"'
)


def _span_queries(selector: str) -> dict[str, BuiltinQuery]:
    calls = f"traces_span_metrics_calls_total{{{selector}}}"
    requests = f"sum(increase({calls}[{{{{ interval }}}}]))"
    # No error series at all is 0% errors (the connector makes a status_code series only once
    # a span has it); no call series at all stays no data, through the denominator.
    errors = (
        f'(sum(rate(traces_span_metrics_calls_total{{{selector},status_code="STATUS_CODE_ERROR"}}'
        "[{{ interval }}])) or vector(0))"
    )
    return {
        TRACE_ERROR_RATE: BuiltinQuery(
            query=f"100 * {errors} / sum(rate({calls}[{{{{ interval }}}}]))",
            requests=requests,
            unit="percent",
        ),
        TRACE_DURATION: BuiltinQuery(
            query=(
                "histogram_quantile(0.99, sum by (le) (rate("
                f"traces_span_metrics_duration_milliseconds_bucket{{{selector}}}"
                "[{{ interval }}])))"
            ),
            requests=requests,
            unit="milliseconds",
        ),
    }


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
        **_span_queries(_SPANS_ISTIO),
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
        **_span_queries(_SPANS_ENVOY),
    },
}


@dataclass(frozen=True, slots=True)
class CountQueries:
    """What a comparing check counts (api/counts.py reads each over an exact window): the
    requests and the bad events, each a cumulative count summed to one series, with
    `{{ subset }}`/`{{ version }}` naming the side, and for a latency check `{{ bound }}`, the
    pattern of the `le` spellings of compare.slowerThan (api/counts.bound_pattern).
    """

    requests: str
    bad: str
    # Whether no series at the window's end is 0 bad events: a 5xx or error counter appears
    # with the first such event. A latency's bad events are the +Inf bucket less the bound's
    # bucket: a bound that is no bucket has no series, which must stay no data, never 0 slow.
    absent_is_zero: bool = True


BOUND = "bound"


def _slow(histogram: str, selector: str) -> CountQueries:
    total = f'sum({histogram}{{{selector},le="+Inf"}})'
    return CountQueries(
        requests=total,
        bad=f'{total} - sum({histogram}{{{selector},le=~"{{{{ {BOUND} }}}}"}})',
        absent_is_zero=False,
    )


def _span_counts(selector: str) -> dict[str, CountQueries]:
    calls = f"traces_span_metrics_calls_total{{{selector}}}"
    return {
        TRACE_ERROR_RATE: CountQueries(
            requests=f"sum({calls})",
            bad=(
                f"sum(traces_span_metrics_calls_total{{{selector},"
                'status_code="STATUS_CODE_ERROR"})'
            ),
        ),
        TRACE_DURATION: _slow("traces_span_metrics_duration_milliseconds_bucket", selector),
    }


COUNTS: dict[QuerySet, dict[str, CountQueries]] = {
    QuerySet.ISTIO: {
        SUCCESS_RATE: CountQueries(
            requests=f"sum(istio_requests_total{{{_ISTIO_SELECTOR}}})",
            bad=f'sum(istio_requests_total{{{_ISTIO_SELECTOR},response_code=~"5.."}})',
        ),
        DURATION: _slow("istio_request_duration_milliseconds_bucket", _ISTIO_SELECTOR),
        **_span_counts(_SPANS_ISTIO),
    },
    QuerySet.ENVOY: {
        SUCCESS_RATE: CountQueries(
            requests=f"sum(envoy_cluster_upstream_rq_xx{{{_ENVOY_SELECTOR}}})",
            bad=(
                f"sum(envoy_cluster_upstream_rq_xx{{{_ENVOY_SELECTOR},"
                'envoy_response_code_class="5"})'
            ),
        ),
        DURATION: _slow("envoy_cluster_upstream_rq_time_bucket", _ENVOY_SELECTOR),
        **_span_counts(_SPANS_ENVOY),
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
