"""The subtle and noisy scenarios: one Canary that compares v2 with v1, in two worlds.

The Canary is the demo's usual one with its success-rate check comparing the canary with stable
(`compare: {against: stable}`, alpha 0.01, minEffect 1.5) beside a typical `min: 95` line, and
steps long enough that the comparison sees a few hundred of v2's requests before promotion.

- subtle: v1 fails 1% of requests, v2 3%. Both stay above 95%, so the line never fails; the
  sequential test proves v2 worse and the rollout is rolled back at once.
- noisy: v1 and v2 both fail 2%. The comparison finds nothing to hold against v2, which is
  promoted. Beside it, the threshold policy many people run (`min: 99`) judges the same requests
  in `mode: observe` (a dry run whose verdicts never count), so the demo can say when that line
  would have rolled back a healthy v2. A Canary's check names are unique and only a built-in's
  name reads a built-in query, so the line is a MetricTemplate holding the built-in's own query.

Why the load is raised: a 3x regression of a 1% rate needs a few dozen bad events to be proven
at alpha 0.01 (in simulation, `tests/traffic.py`, a median of ~520 of v2's requests at 200
requests a second), which the demo's usual 40 requests a second would take minutes to give.

Why the DestinationRule keeps `consecutive5xxErrors: 5`: Envoy ejects a host after five 5xx in a
row. At 3% errors such a run starts at a given request with odds 0.03^5 = 2.4e-8, so over the
~10,000 requests a v2 host serves here the odds of one ejection are about 1 in 4,000; nothing is
ejected and every error reaches the callers and the counts. (A lower setting, 2 or 3, would eject
v2's hosts now and then and hide a share of the very errors the comparison must see.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from canary.api import builtins

# The demo's usual load, and the raised one these scenarios run at (CLI: --rate).
RATE = 200.0
# Each step is long enough that the comparison usually decides within the first two, and the
# whole rollout (90 s) leaves a proven regression room even on a busy machine.
STEP_SECONDS = 30
ALPHA = 0.01
MIN_EFFECT = 1.5
# The line the comparison stands beside: a typical SLO that 1-3% errors never cross.
TYPICAL_MIN = 95
# The line judges no fewer of v2's requests than this (its window, 25 s at the 10% step): on a
# few dozen, 3% errors fail a 95% line often (2 bad in 37 requests is 94.6%; in one run of the
# noisy scenario its first tick did), and the line must never fail here. It bounds the
# comparison's pass too (not its proof, which holds at any count), so the wait for it is longer
# than the step.
LINE_MIN_REQUESTS = 500
LINE_NO_DATA_TIMEOUT = "60s"
# The threshold policy the noisy scenario shows in a dry run.
STRICT_MIN = 99
POLICY_CHECK = "threshold-policy"
POLICY_TEMPLATE = "success-rate-percent"


@dataclass(frozen=True, slots=True)
class World:
    """The share of requests each version fails (a 503), unless the command line says else."""

    stable_error_rate: float
    canary_error_rate: float


SUBTLE = World(stable_error_rate=0.01, canary_error_rate=0.03)
NOISY = World(stable_error_rate=0.02, canary_error_rate=0.02)
# By scenario name (demo/scenario.py's Scenario, a StrEnum, finds its entry too).
WORLDS = {"subtle": SUBTLE, "noisy": NOISY}


def compared(canary: dict[str, Any], *, dry_run_line: bool) -> dict[str, Any]:
    """The demo's Canary with its success-rate check comparing with stable; with `dry_run_line`,
    the `min: 99` threshold policy beside it in observe mode."""
    analysis = canary["spec"]["analysis"]
    for metric in analysis["metrics"]:
        if metric["name"] == builtins.SUCCESS_RATE:
            metric["compare"] = {"against": "stable", "alpha": ALPHA, "minEffect": MIN_EFFECT}
            metric["thresholdRange"] = {"min": TYPICAL_MIN}
            metric["minRequests"] = LINE_MIN_REQUESTS
            metric["noDataTimeout"] = LINE_NO_DATA_TIMEOUT
    if dry_run_line:
        window = analysis["interval"]
        analysis["metrics"].append(
            {
                "name": POLICY_CHECK,
                "templateRef": {"name": POLICY_TEMPLATE},
                "thresholdRange": {"min": STRICT_MIN},
                "interval": window,
                "minRequests": 10,
                "onNoData": "wait",
                "mode": "observe",
            }
        )
    return canary


def success_rate_template(namespace: str) -> dict[str, Any]:
    """The built-in request-success-rate's own queries (plain Envoy stats, as the local mesh
    exports them) as a MetricTemplate, so a second check can judge them by another line."""
    builtin = builtins.QUERIES[builtins.QuerySet.ENVOY][builtins.SUCCESS_RATE]
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": POLICY_TEMPLATE, "namespace": namespace},
        "spec": {
            # The demo answers every template's Prometheus with the mesh's own.
            "provider": {"prometheus": {"address": "http://prometheus.monitoring:9090"}},
            "query": builtin.query,
            "requestsQuery": builtin.requests,
        },
    }
