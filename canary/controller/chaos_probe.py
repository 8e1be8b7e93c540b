"""Reading an experiment's verdict inputs: what the callers saw during its fault window.

The queries come from the controller's query set (builtins.CHAOS) and are evaluated at the
window's end with PromQL's `@`, so a verdict read a few seconds after the fault was cleared
judges the fault and not the recovery. Every answer keeps its kind: an unreachable Prometheus
or a missing series is never read as "no ejection" or "no error", it is said to be unknown.
"""

from __future__ import annotations

import math

from canary.api import builtins, templating
from canary.api.spec import CanarySpec
from canary.engine.observation import ChaosReading
from canary.engine.wanted import ChaosWindow
from canary.ports import CanaryKey, MetricsProvider


def queries(
    key: CanaryKey, spec: CanarySpec, window: ChaosWindow, query_set: builtins.QuerySet
) -> builtins.ChaosQueries:
    seconds = max(1, math.ceil((window.end - window.start).total_seconds()))
    variant = spec.canary if window.subset == spec.canary.subset else spec.stable
    values = {
        "namespace": key.namespace,
        "service": spec.service.host.split(".")[0],
        "subset": window.subset,
        "version": variant.version,
        "window": f"{seconds}s",
        "start": f"{window.start.timestamp():.3f}",
        "at": f"{window.end.timestamp():.3f}",
    }
    chosen = builtins.CHAOS[query_set]
    return builtins.ChaosQueries(
        requests=templating.render(chosen.requests, values),
        errors=templating.render(chosen.errors, values),
        ejections=templating.render(chosen.ejections, values),
        overflow=templating.render(chosen.overflow, values),
        success_rate=templating.render(chosen.success_rate, values),
    )


def read(
    key: CanaryKey,
    spec: CanarySpec,
    window: ChaosWindow,
    *,
    provider: MetricsProvider,
    query_set: builtins.QuerySet,
) -> ChaosReading:
    asked = queries(key, spec, window, query_set)
    return ChaosReading(
        requests=provider.measure(asked.requests),
        errors=provider.measure(asked.errors),
        ejections=provider.measure(asked.ejections),
        overflow=provider.measure(asked.overflow),
        success_rate=provider.measure(asked.success_rate),
    )
