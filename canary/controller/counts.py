"""Reading a comparing check's evidence: each side's requests and bad events over an exact
window, for engine/sequential.py to judge.

The window starts where engine/comparing.window_start says (so no request is counted twice,
across ticks, restarts and suspensions) and ends at the tick. A built-in counts with its query
set's pair (builtins.COUNTS); a template counts bad events with its `query` and requests with
its `requestsQuery`. Each text is rendered once with the canary's variables and once with the
stable side's (the subset the rollout treats as stable now, after a promotion too), then read
over the window (api/counts.window) through the backend's `MetricsProvider`.

Every count keeps its kind: an unreachable backend is an error and a missing series no data,
never 0 requests, and a latency bound that is no bucket of the histogram says so rather than
reading as no slow requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from canary.api import builtins, counts, templating
from canary.api.metric_template import MetricTemplateSpec
from canary.api.metrics import MetricCheck
from canary.api.status import CanaryStatus, MeasurementKind
from canary.controller import queries
from canary.controller.sources import Evidence, PromQL
from canary.engine import comparing
from canary.engine.observation import CountsReading, Measurement
from canary.ports import MetricsProvider


@dataclass(frozen=True, slots=True)
class Texts:
    """One side's two cumulative counts, rendered."""

    requests: str
    bad: str
    absent_is_zero: bool


@dataclass(frozen=True, slots=True)
class Tick:
    """The tick a reading is for: the status (where the window starts), the tick's time, and
    the built-ins' query set."""

    status: CanaryStatus
    now: datetime
    query_set: builtins.QuerySet


def due(
    metric: MetricCheck, query: queries.ResolvedQuery, evidence: Evidence, tick: Tick
) -> CountsReading | None:
    """The reading of a check that is due this tick; None for a check that does not compare
    or whose window has not begun (no live step)."""
    if metric.compare is None:
        return None
    since = comparing.window_start(tick.status, metric.name)
    if since is None:
        return None
    # Each side's variables as the query was resolved with them (queries.resolve: the stable
    # side is the subset the rollout treats as stable now).
    return read(
        metric,
        query.template.spec if query.template is not None else None,
        canary=query.variables,
        stable=query.stable_variables,
        since=since,
        now=tick.now,
        query_set=tick.query_set,
        evidence=evidence,
    )


def read(
    metric: MetricCheck,
    template: MetricTemplateSpec | None,
    *,
    canary: Mapping[str, str],
    stable: Mapping[str, str],
    since: datetime,
    now: datetime,
    query_set: builtins.QuerySet,
    evidence: Evidence,
) -> CountsReading:
    """Each side's requests and bad events from `since` to `now`. `template`: the check's
    MetricTemplateSpec, None for a built-in; `canary`/`stable`: each side's variables."""
    problem = ""
    if not isinstance(evidence, PromQL):
        # Refused by validation (MetricTemplateSpec.comparison_problem); a Canary applied
        # around it still gets an answer, never a crash.
        problem = "a comparison counts requests with a query; use a query backend (prometheus)"
    sides: list[Texts] = []
    for values in (canary, stable):
        try:
            sides.append(_texts(metric, template, values, query_set))
        except (ValueError, KeyError) as exc:
            problem = problem or str(exc)
    if problem or not isinstance(evidence, PromQL):
        failed = Measurement.error(f"spec.analysis.metrics[{metric.name}].compare: {problem}")
        return CountsReading(since, failed, failed, failed, failed)
    provider = evidence.provider
    canary_requests, canary_bad = _count(metric, sides[0], provider, since=since, now=now)
    stable_requests, stable_bad = _count(metric, sides[1], provider, since=since, now=now)
    return CountsReading(since, canary_requests, canary_bad, stable_requests, stable_bad)


def _texts(
    metric: MetricCheck,
    template: MetricTemplateSpec | None,
    values: Mapping[str, str],
    query_set: builtins.QuerySet,
) -> Texts:
    """One side's texts. ValueError (one line) when they cannot be rendered."""
    if template is None:
        chosen = builtins.COUNTS[query_set][metric.name]
        given = dict(values)
        if metric.name in builtins.LATENCY:
            bound = metric.compare.slower_than_seconds if metric.compare else None
            if bound is None:
                raise ValueError("slowerThan: a latency check counts requests over a bound")
            given[builtins.BOUND] = counts.bound_pattern(counts.milliseconds(bound))
        return Texts(
            requests=templating.render(chosen.requests, given),
            bad=templating.render(chosen.bad, given),
            absent_is_zero=chosen.absent_is_zero,
        )
    problem = template.comparison_problem()
    if problem or template.query is None or template.requests_query is None:
        # queries.resolve made such a Canary Invalid; never a crash, never a guess here.
        raise ValueError(problem or "the template needs a query and a requestsQuery")
    return Texts(
        requests=templating.render(template.requests_query, values),
        bad=templating.render(template.query, values),
        absent_is_zero=True,
    )


def _count(
    metric: MetricCheck, texts: Texts, provider: MetricsProvider, *, since: datetime, now: datetime
) -> tuple[Measurement, Measurement]:
    requests = provider.measure(
        counts.window(texts.requests, since=since, now=now, absent_is_zero=False)
    )
    bad = provider.measure(
        counts.window(texts.bad, since=since, now=now, absent_is_zero=texts.absent_is_zero)
    )
    slow = metric.compare.slower_than_seconds if metric.compare else None
    if (
        slow is not None
        and bad.kind is MeasurementKind.NO_DATA
        and requests.kind is MeasurementKind.VALUE
    ):
        # The +Inf bucket is there and the bound's is not: a bound the histogram lacks.
        bad = Measurement.no_data(
            query=bad.query,
            message=f"compare.slowerThan: the histogram has no bucket "
            f"le={counts.milliseconds(slow):g} (ms); slowerThan must be one of the histogram's "
            "bucket bounds",
        )
    return requests, bad
