"""Bad-canary blast radius: the demo's policy next to a plain "threshold x interval" policy.

Both variants run in this one process, each on a fresh local mesh (`canary demo`'s world: two
instances per version, 40 req/s, 5 ms answers) where v2 answers 503 to a share of requests
(20% by default), driven by the real controller until the Canary is Failed:

- default: the demo's Canary as `canary.demo.scenario` defines it (checks every checkInterval,
  a few seconds, within each step's interval);
- plain: the same Canary with checkInterval equal to interval, so a check runs once per
  interval and `threshold` failed checks take threshold x interval, which is how Flagger counts.

What users saw comes from the load generator's records, counted per whole second by the time
each request was due, with the version and status of its answer:

- failed requests: every 5xx answer the load generator got, from the start of the mesh's load
  to 2 s after the terminal phase (v1 is healthy, so they are v2's, or Envoy's own if marked
  `envoy`); requests with no answer at all are counted apart;
- seconds: from the start of the first second holding a 5xx to the end of the last second
  holding any answer from v2, i.e. until the data plane served 100% v1 (1 s resolution). The
  Failed transition, on the same clock, is printed beside it as a cross-check.

The figures are printed per run, with a line of what happened when (events and judged checks,
in seconds from the start of the first bad second), and, with `--repeat K`, as medians, then as
ratios default / plain against the target of 1/3. `--good-runs N` then runs the healthy
scenario N times with the default policy and counts the runs that did not end Succeeded (false
rollbacks).

Run: `.venv/bin/python benchmarks/bench_blast_radius.py [--repeat 1] [--good-runs 10]`.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import _mesh_runs

from canary.api.resources import Canary
from canary.api.spec import Analysis
from canary.api.status import Phase
from canary.demo import scenario
from canary.localmesh import loadgen

TARGET_RATIO = 1 / 3
ENVOY = "envoy"


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    objects: list[dict[str, Any]]

    @property
    def analysis(self) -> Analysis:
        body = next(body for body in self.objects if body["kind"] == "Canary")
        return Canary.model_validate(body).spec.analysis

    @property
    def nominal_s(self) -> float:
        """threshold x interval: how long a Flagger-style policy takes to roll back."""
        return self.analysis.threshold * self.analysis.interval_seconds

    def describe(self) -> str:
        analysis = self.analysis
        return (
            f"interval {analysis.interval_seconds:g}s, checkInterval "
            f"{analysis.check_interval_seconds:g}s, threshold {analysis.threshold} "
            f"(threshold x interval = {self.nominal_s:g}s)"
        )


def variants() -> tuple[Variant, Variant]:
    demo = scenario.objects()
    plain = copy.deepcopy(demo)
    for body in plain:
        if body["kind"] == "Canary":
            analysis = body["spec"]["analysis"]
            analysis["checkInterval"] = analysis["interval"]
    return Variant("default", demo), Variant("plain", plain)


@dataclass(frozen=True, slots=True)
class Blast:
    phase: str
    failed: int
    failed_by_version: dict[str, int]
    no_response: int
    first_bad_s: int | None
    first_canary_s: int | None
    last_canary_s: int | None
    failed_at_s: float | None
    timeline: str

    @property
    def seconds(self) -> int | None:
        if self.first_bad_s is None or self.last_canary_s is None:
            return None
        return self.last_canary_s + 1 - self.first_bad_s


def blast(rollout: _mesh_runs.Rollout, canary_version: str) -> Blast:
    per_second = rollout.snapshot.per_second
    bad: Counter[str] = Counter()
    no_response = 0
    first_bad: int | None = None
    first_canary: int | None = None
    last_canary: int | None = None
    for second in sorted(per_second):
        for outcome, count in per_second[second].items():
            if outcome.status >= 500:
                version = ENVOY if outcome.version == loadgen.UNKNOWN_VERSION else outcome.version
                bad[version] += count
                first_bad = second if first_bad is None else first_bad
            elif outcome.status == loadgen.NO_RESPONSE:
                no_response += count
            if outcome.version == canary_version:
                first_canary = second if first_canary is None else first_canary
                last_canary = second
    origin = float(first_bad or 0)
    failed_at = None
    if rollout.status.phase is Phase.FAILED and rollout.status.last_transition_time is not None:
        failed_at = rollout.load_second(rollout.status.last_transition_time) - origin
    return Blast(
        phase=rollout.phase,
        failed=sum(bad.values()),
        failed_by_version=dict(bad),
        no_response=no_response,
        first_bad_s=first_bad,
        first_canary_s=first_canary,
        last_canary_s=last_canary,
        failed_at_s=failed_at,
        timeline=_timeline(rollout, origin),
    )


def _timeline(rollout: _mesh_runs.Rollout, origin: float) -> str:
    """Events and judged checks, in seconds since the start of the first bad second."""
    moments: list[tuple[float, str]] = []
    for event in rollout.events:
        at = rollout.load_second(datetime.fromisoformat(event["time"])) - origin
        moments.append((at, event["reason"]))
    for check in rollout.status.history:
        value = "" if check.value is None else f" {check.value:.4g}"
        samples = "" if check.samples is None else f" ({check.samples} req)"
        detail = f"{check.name} {check.verdict}{value}{samples}"
        moments.append((rollout.load_second(check.at) - origin, detail))
    return "; ".join(f"{at:+.1f}s {what}" for at, what in sorted(moments))


def print_blast(variant: Variant, result: Blast, rollout: _mesh_runs.Rollout) -> None:
    by_version = ", ".join(f"{v} {n}" for v, n in sorted(result.failed_by_version.items()))
    failed_at = "-" if result.failed_at_s is None else f"+{result.failed_at_s:.1f} s"
    print(
        f"  {variant.name:<8} {result.phase} after {rollout.rollout_s:.1f} s: "
        f"{result.failed} failed requests ({by_version or 'none'}; no answer: "
        f"{result.no_response}); {_or_dash(result.seconds)} s from the first bad answer to "
        f"100% v1"
    )
    print(
        f"           load seconds: v2 answers {_or_dash(result.first_canary_s)}.."
        f"{_or_dash(result.last_canary_s)}, first 5xx in {_or_dash(result.first_bad_s)}; "
        f"Failed recorded at {failed_at} after the start of the first bad second"
    )
    print(f"           {result.timeline}")


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def ratio(part: float | None, whole: float | None) -> str:
    if part is None or whole is None or whole == 0:
        return "n/a"
    verdict = "within" if part / whole <= TARGET_RATIO + 1e-9 else "OVER"
    return f"{part:g} / {whole:g} = {part / whole:.2f}  ({verdict} the target of 1/3)"


def median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def compare(args: argparse.Namespace, logs: Path) -> None:
    default, plain = variants()
    load = _mesh_runs.Load(
        rate=args.rate, canary_error_rate=args.error_rate, timeout_s=args.timeout
    )
    canary_version = scenario.plan(default.objects).canary_version
    print(
        f"bad-canary blast radius on the local mesh: {canary_version} answers 503 to "
        f"{args.error_rate:.0%} of requests, {args.rate:g} req/s, {args.repeat} repeat(s)"
    )
    for variant in (default, plain):
        print(f"  {variant.name:<8} {variant.describe()}")
    results: dict[str, list[Blast]] = {default.name: [], plain.name: []}
    for repeat in range(args.repeat):
        print(f"repeat {repeat + 1}/{args.repeat}:")
        order = (default, plain) if repeat % 2 == 0 else (plain, default)
        for variant in order:
            log_path = logs / f"bad-{variant.name}-{repeat + 1}.log"
            rollout = _mesh_runs.run(
                variant.objects, load, log_path=log_path, log_level=args.log_level
            )
            result = blast(rollout, canary_version)
            results[variant.name].append(result)
            print_blast(variant, result, rollout)
            if result.phase == Phase.FAILED:
                if not args.keep_logs:
                    log_path.unlink(missing_ok=True)
            else:
                print(f"           not Failed: {rollout.status.message} (log: {log_path})")
    mine, theirs = results[default.name], results[plain.name]
    label = "median " if args.repeat > 1 else ""
    print(f"blast radius, {default.name} / {plain.name} ({label}over {args.repeat} repeat(s)):")
    failed = ratio(median([r.failed for r in mine]), median([r.failed for r in theirs]))
    seconds = ratio(median([r.seconds for r in mine]), median([r.seconds for r in theirs]))
    print(f"  failed requests: {failed}")
    print(f"  seconds:         {seconds}")
    # A step's clock starts at the first tick that sees its weights live; when that tick is a
    # whole checkInterval after the write, the plain variant takes (threshold + 1) x interval,
    # an interval more than Flagger. The nominal figure (computed, not measured) keeps the
    # ratio honest either way.
    nominal = ratio(median([r.seconds for r in mine]), plain.nominal_s)
    print(f"  seconds vs plain's nominal threshold x interval: {nominal}")


def good_runs(args: argparse.Namespace, logs: Path) -> None:
    default, _ = variants()
    load = _mesh_runs.Load(rate=args.rate, timeout_s=args.timeout)
    print(f"good scenario, {default.name} policy ({default.describe()}), {args.good_runs} runs:")
    false_rollbacks = 0
    for run in range(args.good_runs):
        log_path = logs / f"good-{run + 1}.log"
        rollout = _mesh_runs.run(default.objects, load, log_path=log_path, log_level=args.log_level)
        failed = sum(
            count
            for counts in rollout.snapshot.per_second.values()
            for outcome, count in counts.items()
            if outcome.status >= 500
        )
        line = (
            f"  good {run + 1}/{args.good_runs}: {rollout.phase} after {rollout.rollout_s:.1f} s "
            f"(mesh start {rollout.mesh_start_s:.1f} s), failed checks "
            f"{rollout.status.failed_checks}, 5xx seen by users {failed}"
        )
        if rollout.phase == Phase.SUCCEEDED:
            if not args.keep_logs:
                log_path.unlink(missing_ok=True)
        else:
            false_rollbacks += 1
            line += f"\n      {rollout.status.message} (log: {log_path})"
            for check in rollout.status.history:
                if check.verdict != "pass":
                    line += f"\n      {check.name} {check.verdict} {check.value} {check.message}"
        print(line, flush=True)
    print(f"false rollbacks: {false_rollbacks} of {args.good_runs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="bad runs per variant (default 1)")
    parser.add_argument(
        "--good-runs", type=int, default=10, help="healthy runs to count false rollbacks (0: skip)"
    )
    parser.add_argument("--error-rate", type=float, default=0.2, help="v2's share of 503s")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per rollout, at most")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep every run's controller log, not only odd ones",
    )
    args = parser.parse_args(argv)
    # Every tick's phase and weight is a debug line: worth having in a log someone asked to keep.
    args.log_level = "debug" if args.keep_logs else "info"
    if args.repeat < 0 or args.good_runs < 0 or not 0 < args.error_rate <= 1:
        parser.error("--repeat and --good-runs must not be negative, --error-rate within (0, 1]")
    command = " ".join([".venv/bin/python", "benchmarks/bench_blast_radius.py", *sys.argv[1:]])
    logs = Path(tempfile.mkdtemp(prefix="bench-blast-radius-"))
    started = time.monotonic()
    if args.repeat:
        compare(args, logs)
    if args.good_runs:
        good_runs(args, logs)
    print(f"command: {command}  ({time.monotonic() - started:.0f} s)")
    if any(logs.iterdir()):
        print(f"controller logs: {logs}")
    else:
        logs.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
