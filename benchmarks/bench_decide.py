"""How many ticks per second `decide` sustains: the figure the engine is held to (>= 20,000).

The reason for 20,000: 10,000 Canaries at a 10 s check interval tick 1,000 times a second, so at
that rate `decide` takes at most a twentieth of one core, and the rest goes to observing and
acting.

The Canary has three checks, two built-ins and a MetricTemplate, judged at every tick (its
checkInterval is the tick), and its status carries a full history (HISTORY_LIMIT records) from
the first tick, so every judged tick also trims it. Rollouts run back to back, each for a new
revision, in turn: a healthy canary (promoted), one that fails from 50% (rolled back), and one
whose template metric has no data (inconclusive while onNoData: wait allows, then failed), so
every path of the state machine is in the mix.

The rollouts are simulated first, keeping each tick's (status, observation, now); the timed
loops then call `decide`, and `wanted` + `decide`, on exactly those inputs, so the figures hold
the engine's work and none of the simulated world's. The inputs are frozen out of the garbage
collector's way (gc.freeze), as a controller holds one status per Canary, not 100,000.

    python benchmarks/bench_decide.py [--ticks N] [--rounds N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from canary.api.comparison import Comparison
from canary.api.spec import CanarySpec
from canary.api.status import (
    HISTORY_LIMIT,
    TERMINAL_PHASES,
    CanaryStatus,
    CheckResult,
    MeasurementKind,
    Phase,
    Verdict,
)
from canary.engine import comparing, revision
from canary.engine.actions import SetWeights
from canary.engine.decide import decide
from canary.engine.observation import CountsReading, Measurement, Observation, Traffic
from canary.engine.wanted import wanted

TARGET = 20_000
TICK = timedelta(seconds=10)
T0 = datetime(2026, 1, 1, tzinfo=UTC)

SPEC = CanarySpec.model_validate(
    {
        "service": {"host": "accounts"},
        "stable": {"subset": "v1"},
        "canary": {"subset": "v2"},
        "progressDeadline": "2m",
        "analysis": {
            "interval": "30s",
            "checkInterval": "10s",
            "threshold": 2,
            "stepWeights": [10, 25, 50, 75],
            "metrics": [
                {
                    "name": "request-success-rate",
                    "thresholdRange": {"min": 99},
                    "minRequests": 100,
                },
                {"name": "request-duration", "thresholdRange": {"max": 500}},
                {
                    "name": "error-budget",
                    "templateRef": {"name": "error-budget"},
                    "thresholdRange": {"max": 1},
                    "onNoData": "wait",
                    "noDataTimeout": "20s",
                },
            ],
        },
    }
)

# The same Canary whose success-rate check also compares with stable (engine/comparing.py):
# each judged tick then carries the sequential test on, on counts that grow with the step.
COMPARING = SPEC.model_copy(
    update={
        "analysis": SPEC.analysis.model_copy(
            update={
                "metrics": [
                    SPEC.analysis.metrics[0].model_copy(
                        update={"compare": Comparison(alpha=0.01, min_effect=1.5)}
                    ),
                    *SPEC.analysis.metrics[1:],
                ]
            }
        )
    }
)

SUCCESS, DURATION, BUDGET = "request-success-rate", "request-duration", "error-budget"
GOOD = {
    SUCCESS: Measurement.of(99.95, query="success", samples=1200),
    DURATION: Measurement.of(212.0, query="duration", samples=1200),
    BUDGET: Measurement.of(0.2, query="budget", samples=1200),
}
DEGRADED = {**GOOD, SUCCESS: Measurement.of(97.5, query="success", samples=1200)}
SILENT = {**GOOD, BUDGET: Measurement.no_data(query="budget")}


def answers(scenario: str, canary_weight: int) -> dict[str, Measurement]:
    if scenario == "degrading" and canary_weight >= 50:
        return DEGRADED
    return SILENT if scenario == "silent" else GOOD


SCENARIOS = ("healthy", "degrading", "silent")


def full_history() -> CanaryStatus:
    """A status that ended an earlier rollout with HISTORY_LIMIT records already kept."""
    history = tuple(
        CheckResult(
            name=(SUCCESS, DURATION, BUDGET)[index % 3],
            kind=MeasurementKind.VALUE,
            value=99.9,
            samples=1000,
            query="earlier",
            threshold=">= 99",
            verdict=Verdict.PASS,
            passed=True,
            counted=True,
            message="",
            revision="earlier",
            step=index % 4,
            weight=10,
            at=T0 - timedelta(seconds=10 * (HISTORY_LIMIT - index)),
        )
        for index in range(HISTORY_LIMIT)
    )
    return CanaryStatus(
        phase=Phase.SUCCEEDED,
        revision="earlier",
        stable_subset="v2",
        canary_subset="v2",
        canary_weight=100,
        history=history,
    )


Inputs = list[tuple[CanaryStatus, Observation, datetime]]


def counted(status: CanaryStatus, now: datetime, scenario: str) -> dict[str, CountsReading]:
    """The success-rate check's counts since its window began: 120 requests a second, a 1 in
    1,000 failing on both sides (5 in 100 on a degrading canary from 50%)."""
    since = comparing.window_start(status, SUCCESS)
    if since is None:
        return {}
    seconds = (now - since).total_seconds()
    share = status.canary_weight / 100
    canary, stable = 120 * seconds * share, 120 * seconds * (1 - share)
    bad = 0.05 if scenario == "degrading" and status.canary_weight >= 50 else 0.001
    sides = (canary, round(canary * bad), stable, round(stable * 0.001))
    return {SUCCESS: CountsReading(since, *(Measurement.of(float(n)) for n in sides))}


def record(ticks: int, spec: CanarySpec = SPEC) -> tuple[Inputs, Counter[str]]:
    """Simulate `ticks` ticks of back-to-back rollouts; keep what each `decide` call is given."""
    revisions = [revision.of(spec, target_revision=f"build-{n}") for n in range(2)]
    comparing_checks = spec is COMPARING
    observations: dict[tuple[object, ...], Observation] = {}
    status, now, rollout = full_history(), T0, 0
    route, applied_from = {"v1": 100, "v2": 0}, 0
    inputs: Inputs = []
    mix: Counter[str] = Counter()
    for tick in range(ticks):
        scenario = SCENARIOS[rollout % len(SCENARIOS)]
        rev = revisions[rollout % 2]
        applied = tick >= applied_from
        due = bool(wanted(spec, status, now).metrics)
        key = (rev, route["v2"], applied, scenario, due)
        if key not in observations:
            observations[key] = Observation(
                revision=rev,
                traffic=Traffic(weights=dict(route), applied=applied),
                measurements=answers(scenario, route["v2"]) if due else {},
            )
        seen = observations[key]
        if comparing_checks and due:
            seen = replace(seen, comparisons=counted(status, now, scenario))
        inputs.append((status, seen, now))
        decision = decide(spec, status, seen, now)
        for action in decision.actions:
            if isinstance(action, SetWeights) and route["v2"] != action.canary_weight:
                route = {"v1": action.stable_weight, "v2": action.canary_weight}
                applied_from = tick + 1
        mix["ticks with checks judged"] += decision.status.last_check_at == now
        status, now = decision.status, now + TICK
        if status.phase in TERMINAL_PHASES:
            mix[f"{scenario} -> {status.phase}"] += 1
            # The next release: a new build, with the route back on the stable subset.
            rollout += 1
            route, applied_from = {"v1": 100, "v2": 0}, tick + 1
    assert all(len(s.history) == HISTORY_LIMIT for s, _, _ in inputs)
    return inputs, mix


def timed(inputs: Inputs, *, with_wanted: bool, spec: CanarySpec = SPEC) -> float:
    start = time.perf_counter()
    if with_wanted:
        for status, seen, now in inputs:
            wanted(spec, status, now)
            decide(spec, status, seen, now)
    else:
        for status, seen, now in inputs:
            decide(spec, status, seen, now)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="report the best of this many")
    parser.add_argument("--profile", action="store_true", help="cProfile one decide-only round")
    options = parser.parse_args()

    inputs, mix = record(options.ticks)
    gc.collect()
    gc.freeze()
    ticks = len(inputs)
    print(f"{ticks} ticks, history {HISTORY_LIMIT} records throughout; rollouts:")
    for outcome, count in sorted(mix.items()):
        print(f"  {outcome}: {count}")

    if options.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        timed(inputs, with_wanted=False)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats("canary", 20)

    rates = {}
    for label, with_wanted in (("decide", False), ("wanted+decide", True)):
        best = min(timed(inputs, with_wanted=with_wanted) for _ in range(options.rounds))
        rate = rates[label] = ticks / best
        target = f" (target >= {TARGET:,})" if not with_wanted else ""
        print(f"{label}: {ticks} ticks in {best:.3f} s = {rate:,.0f} ticks/s{target}")

    compared, compared_mix = record(options.ticks, COMPARING)
    gc.collect()
    gc.freeze()
    print("the same Canary with its success-rate check also comparing with stable; rollouts:")
    for outcome, count in sorted(compared_mix.items()):
        print(f"  {outcome}: {count}")
    best = min(timed(compared, with_wanted=False, spec=COMPARING) for _ in range(options.rounds))
    rate = len(compared) / best
    print(
        f"decide, comparing: {len(compared)} ticks in {best:.3f} s = {rate:,.0f} ticks/s "
        f"(target >= {TARGET:,}; {rate / rates['decide']:.2f}x the threshold-only Canary)"
    )


if __name__ == "__main__":
    main()
