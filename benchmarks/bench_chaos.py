"""The demo's chaos experiment with and without outlier detection, side by side, from one run.

Both variants run in this one process, each on a fresh local mesh (`canary demo`'s world: real
Envoys, real Prometheus, two instances per version, 40 req/s) driven by the real controller to
a terminal phase. v2 is healthy; at the 25% step the demo's experiment (`scenario.EXPERIMENT`)
makes its inbound Envoys answer 503 to 80% of requests for 10 s:

- protected: `canary demo --scenario chaos`, whose DestinationRule has outlier detection
  (consecutive5xxErrors 5, interval 5s, baseEjectionTime 15s, maxEjectionPercent 50);
- unprotected: `--scenario chaos-unprotected`, the same DestinationRule without it.

Per variant the table gives:

- the time from the fault's injection (the experiment's startedAt in the status) to the first
  ejection of a canary host, from the client-side Envoy's admin stats polled every 0.1 s (why
  these and not the Prometheus samples: see `_chaos_runs`), and when the fault first bit;
- what users saw during the fault: the load generator's answers over the whole seconds between
  startedAt and endedAt, every version together, and which of the failures were the canary's
  (a 5xx from v2, or a 5xx without a version: the injected aborts carry none);
- the experiment's verdict as the controller wrote it to the status, and the rollout's end.

With `--runs N` each variant runs N times, alternating, and the table shows medians.

Run: `.venv/bin/python benchmarks/bench_chaos.py [--runs 1]` (about 2 min per pair).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import _chaos_runs
import _mesh_runs

from canary.api.resources import Canary
from canary.api.status import ChaosResult
from canary.demo import scenario

LABEL_WIDTH = 50
COLUMN_WIDTH = 26


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    chosen: scenario.Scenario

    @property
    def objects(self) -> list[dict[str, Any]]:
        return scenario.objects(self.chosen)


VARIANTS = (
    Variant("outlier detection", scenario.Scenario.CHAOS),
    Variant("no outlier detection", scenario.Scenario.CHAOS_UNPROTECTED),
)


@dataclass(frozen=True, slots=True)
class Result:
    rollout: _mesh_runs.Rollout
    seen: _chaos_runs.Seen
    chaos: ChaosResult | None
    # Users over the fault's seconds, and over those after the first ejection.
    fault: _chaos_runs.Users
    after_ejection: _chaos_runs.Users

    def since_start(self, moment: datetime | None) -> float | None:
        started = self.seen.started_at
        return None if moment is None or started is None else (moment - started).total_seconds()

    @property
    def served_to_ejection(self) -> float | None:
        served, ejected = self.seen.fault_served_at, self.seen.ejected_at
        return None if served is None or ejected is None else (ejected - served).total_seconds()


def run_once(variant: Variant, load: _mesh_runs.Load, log_path: Path, log_level: str) -> Result:
    objects = variant.objects
    body = next(body for body in objects if body["kind"] == "Canary")
    plan = scenario.plan(objects)
    watcher = _chaos_runs.Watcher(
        key=plan.key,
        experiment=str(scenario.EXPERIMENT["name"]),
        canary_subset=Canary.model_validate(body).spec.canary.subset,
    )
    rollout = _mesh_runs.run(
        objects, load, log_path=log_path, log_level=log_level, watch=watcher.watching
    )
    seen = watcher.seen
    chaos = next((r for r in rollout.status.chaos if r.name == scenario.EXPERIMENT["name"]), None)
    fault = after = _chaos_runs.Users(None, None)
    if chaos is not None:
        # An experiment cut short (a rollback, the time limit) has no endedAt; its expiry is
        # the latest the fault could have lasted.
        ended = chaos.ended_at or chaos.expires_at
        fault = _chaos_runs.users(
            rollout, chaos.started_at, ended, canary_version=plan.canary_version
        )
        if seen.ejected_at is not None:
            after = _chaos_runs.users(
                rollout, seen.ejected_at, ended, canary_version=plan.canary_version
            )
    return Result(rollout, seen, chaos, fault, after)


Number = Callable[[Result], float | None]


def _chaos_field(name: str) -> Number:
    def read(result: Result) -> float | None:
        value = None if result.chaos is None else getattr(result.chaos, name)
        return None if value is None else float(value)

    return read


def _share(part: Callable[[_chaos_runs.Users], int]) -> Number:
    def read(result: Result) -> float | None:
        total = result.fault.requests
        return None if not total else 100 * part(result.fault) / total

    return read


@dataclass(frozen=True, slots=True)
class Row:
    """A line of the table; an indented label details the line above."""

    label: str
    value: Number
    fmt: str = "{:.0f}"
    # What a run without a value shows, e.g. "never" for an ejection that did not happen.
    missing: str = "-"


def _ejected(result: Result) -> float | None:
    return result.since_start(result.seen.ejected_at)


def _served(result: Result) -> float | None:
    return result.since_start(result.seen.fault_served_at)


def _seconds_after_ejection(result: Result) -> float | None:
    return None if result.seen.ejected_at is None else float(result.after_ejection.seconds)


NUMBER_ROWS = (
    Row("fault injected -> first canary host ejected (s)", _ejected, "{:.2f}", "never"),
    Row("  injected -> first abort served (s)", _served, "{:.2f}", "never"),
    Row("  first abort served -> first ejection (s)", lambda r: r.served_to_ejection, "{:.2f}"),
    Row("  canary hosts ejected at once, at most", lambda r: r.seen.ejections_active_max),
    Row("  admin polls: longest gap (s)", lambda r: r.seen.poll_gap_max_s or None, "{:.2f}"),
    Row("users' success rate during the fault (%)", lambda r: r.fault.success_rate, "{:.1f}"),
    Row("  whole load seconds in the fault window", lambda r: r.fault.seconds),
    Row("  requests", lambda r: r.fault.requests),
    Row("  failed (5xx or no answer)", lambda r: r.fault.failed),
    Row("  no answer at all", lambda r: r.fault.no_response),
    Row("  requests that reached the canary (%)", _share(lambda u: u.canary_requests), "{:.1f}"),
    Row("  canary's share of the failures (%)", lambda r: r.fault.canary_failure_share, "{:.1f}"),
    Row("  canary's requests that failed (%)", lambda r: r.fault.canary_failure_rate, "{:.1f}"),
    # Whether the ejection changed what users saw: the subset's other hosts share the fault.
    Row(
        "users' success rate after the 1st ejection (%)",
        lambda r: r.after_ejection.success_rate,
        "{:.1f}",
    ),
    Row("  whole load seconds after the 1st ejection", _seconds_after_ejection),
    Row("status.chaos: requests to the canary", _chaos_field("requests")),
    Row("status.chaos: errors (5xx)", _chaos_field("errors")),
    Row("status.chaos: ejections", _chaos_field("ejections"), missing="unknown"),
    Row("status.chaos: successRate (%)", _chaos_field("success_rate"), "{:.2f}", "unknown"),
    Row("rollout: start to end (s)", lambda r: r.rollout.rollout_s, "{:.1f}"),
)


def _experiment_phase(result: Result) -> str:
    return "-" if result.chaos is None else result.chaos.phase.value


def _rollout_phase(result: Result) -> str:
    return result.rollout.phase + (" (time limit)" if result.rollout.timed_out else "")


TEXT_ROWS = (("status.chaos: phase", _experiment_phase), ("rollout: final phase", _rollout_phase))


def number_cell(values: Sequence[float | None], fmt: str, missing: str) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return missing
    cell = fmt.format(statistics.median(known))
    if len(known) < len(values):
        cell += f" ({missing} in {len(values) - len(known)})"
    return cell


def text_cell(values: Sequence[str]) -> str:
    counts = Counter(values)
    if len(counts) == 1:
        return values[0]
    return ", ".join(f"{value} x{count}" for value, count in counts.most_common())


def print_table(results: dict[str, list[Result]], runs: int) -> None:
    names = [variant.name for variant in VARIANTS]
    what = f"median of {runs} runs" if runs > 1 else "one run each"
    print(f"\n{'(' + what + ')':<{LABEL_WIDTH}}" + "".join(f"{n:>{COLUMN_WIDTH}}" for n in names))
    rows: list[tuple[str, list[str]]] = []
    for row in NUMBER_ROWS:
        cells = [
            number_cell([row.value(r) for r in results[n]], row.fmt, row.missing) for n in names
        ]
        rows.append((row.label, cells))
    for label, text in TEXT_ROWS:
        rows.append((label, [text_cell([text(r) for r in results[n]]) for n in names]))
    for label, cells in rows:
        print(f"{label:<{LABEL_WIDTH}}" + "".join(f"{c:>{COLUMN_WIDTH}}" for c in cells))
    print("\nthe experiment's verdict, as written to status.chaos[].message:")
    for name in names:
        for index, result in enumerate(results[name]):
            message = "-" if result.chaos is None else result.chaos.message
            print(f"  {name} #{index + 1}: {message}")


def describe_run(variant: Variant, index: int, result: Result) -> str:
    fault = result.fault
    ejected = result.since_start(result.seen.ejected_at)
    window = "-" if fault.first is None else f"load s {fault.first}..{fault.last}"
    return (
        f"  {variant.name} #{index + 1}: {result.rollout.phase} in "
        f"{result.rollout.rollout_s:.1f} s (mesh start {result.rollout.mesh_start_s:.1f} s); "
        f"first ejection {'never' if ejected is None else f'+{ejected:.2f} s'}; "
        f"fault {window}: {fault.requests} req, {fault.failed} failed"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per variant (default 1)")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per rollout, at most")
    parser.add_argument("--keep-logs", action="store_true", help="keep every controller log")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    command = shlex.join([".venv/bin/python", "benchmarks/bench_chaos.py", *sys.argv[1:]])
    print(
        f"chaos at the {scenario.EXPERIMENT['atWeight']}% step: "
        f"{scenario.EXPERIMENT['fault']} for {scenario.EXPERIMENT['duration']} on "
        f"{scenario.EXPERIMENT.get('pods') or 'every'} v2 pod(s) of 2, "
        f"{args.rate:g} req/s, {args.runs} run(s) per variant, alternating"
    )
    load = _mesh_runs.Load(rate=args.rate, timeout_s=args.timeout)
    logs = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    # Every tick's phase and weight is a debug line: worth having in a log someone keeps.
    log_level = "debug" if args.keep_logs else "info"
    results: dict[str, list[Result]] = {variant.name: [] for variant in VARIANTS}
    started = time.monotonic()
    for index in range(args.runs):
        # Alternating, so a slow spell of this shared machine does not fall on one variant.
        order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            log_path = logs / f"{variant.chosen.value}-{index + 1}.log"
            result = run_once(variant, load, log_path, log_level)
            results[variant.name].append(result)
            print(describe_run(variant, index, result), flush=True)
            expected = scenario.EXPECTED[variant.chosen].phase
            if result.rollout.phase == expected and not args.keep_logs:
                log_path.unlink(missing_ok=True)
            elif result.rollout.phase != expected:
                print(f"    expected {expected}: {result.rollout.status.message} ({log_path})")
    print_table(results, args.runs)
    print(f"\ncommand: {command}  ({time.monotonic() - started:.0f} s)")
    print(f"machine: {os.cpu_count()} shared cores, noisy")
    if any(logs.iterdir()):
        print(f"controller logs: {logs}")
    else:
        logs.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
