"""How fast the sequential comparison proves a regression, and what it costs the users meanwhile.

Whole rollouts on synthetic traffic (tests/traffic.py: Poisson requests, Bernoulli failures,
readings every check interval as counts since the step's start), judged by
`engine/sequential.py` alone: no mesh, no controller, so thousands of rollouts take seconds.
Per effect it prints the share of rollouts in which the regression was proven before the
rollout ended, the median and 90th percentile of the seconds until it was, and the canary's
requests and failed requests served until then (for rollouts never caught: all of them).

Effects: the canary's error rate 1.2x, 1.5x, 2x, 5x and 20x stable's 1%; latency shifts of the
canary (its median 10%, 25%, 50% slower, latencies lognormal with stable's median 100 ms and
sigma 0.5) judged as the share of requests over a 250 ms bucket bound, which is counts again;
and A/A (identical), whose proven regressions are false alarms (held under alpha by
tests/unit/engine/test_sequential.py).

    python benchmarks/bench_sequential.py [--rollouts N] [--seed N] [--rps N]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canary.api.comparison import Comparison
from tests import traffic

STABLE_MEDIAN_MS = 100.0
SIGMA = 0.5
BOUND_MS = 250.0


def _over_bound(median_ms: float) -> float:
    """The share of lognormal latencies with this median (and SIGMA) over BOUND_MS."""
    return 0.5 * math.erfc(math.log(BOUND_MS / median_ms) / (SIGMA * math.sqrt(2)))


def _cases(base: traffic.Rollout) -> list[tuple[str, traffic.Rollout]]:
    cases = [("A/A 1%", base)]
    cases += [(f"errors {ratio:g}x", replace(base, ratio=ratio)) for ratio in (1.2, 1.5, 2, 5, 20)]
    slow = _over_bound(STABLE_MEDIAN_MS)
    for shift in (1.1, 1.25, 1.5):
        ratio = _over_bound(STABLE_MEDIAN_MS * shift) / slow
        name = f"latency +{(shift - 1) * 100:.0f}% ({slow:.1%}->{slow * ratio:.1%} >250ms)"
        cases.append((name, replace(base, stable_rate=slow, ratio=ratio)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=1000, help="rollouts per effect")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--rps", type=float, default=100.0, help="requests a second, both sides")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--min-effect", type=float, default=1.5)
    args = parser.parse_args()
    comparison = Comparison(alpha=args.alpha, min_effect=args.min_effect)
    base = traffic.Rollout(rps=args.rps)
    print(
        f"seed {args.seed}; {args.rollouts} rollouts per effect; steps {base.weights}% of "
        f"{base.step_s:g}s, a reading every {base.check_s:g}s, {args.rps:g} requests/s; "
        f"alpha {args.alpha:g}, minEffect {args.min_effect:g}"
    )
    header = (
        f"{'effect':<36} {'proven':>7} {'median s':>9} {'p90 s':>6} "
        f"{'canary req':>11} {'canary bad':>11} {'equiv.':>7}"
    )
    print(header)
    rng = random.Random(args.seed)
    started = time.monotonic()
    for name, rollout in _cases(base):
        outcomes = [traffic.run(rollout, comparison, rng) for _ in range(args.rollouts)]
        caught = sorted(o.regression_at for o in outcomes if o.regression_at is not None)
        median = f"{statistics.median(caught):.0f}" if caught else "-"
        p90 = f"{caught[math.ceil(0.9 * len(caught)) - 1]:.0f}" if caught else "-"
        requests = statistics.median(o.canary_requests for o in outcomes)
        bad = statistics.median(o.canary_bad for o in outcomes)
        equivalent = sum(o.equivalent_at is not None for o in outcomes) / len(outcomes)
        print(
            f"{name:<36} {len(caught) / len(outcomes):>7.1%} {median:>9} {p90:>6} "
            f"{requests:>11.0f} {bad:>11.0f} {equivalent:>7.1%}"
        )
    print(f"({time.monotonic() - started:.1f}s)")


if __name__ == "__main__":
    main()
