"""Bad-canary blast radius on the local mesh: four policies judge the same canaries.

Each rollout runs on a fresh local mesh (`canary demo`'s world: two instances per version, 5 ms
answers, the load generator at `--rate` requests per second), driven by the real controller
until the Canary is terminal. The policies (`_blast_policies`) are the demo's Canary with only
the judge changed:

- plain: a Flagger-style threshold x interval policy (a check once per 12 s interval, threshold
  2, success rate `min: 99`, p99 `max: 500`);
- fast: today's demo policy (the same lines, checked every 2 s);
- fast-95: the same with the success-rate line at `min: 95` (a line stable's own 1% does not
  cross: fast's `min: 99` sits on it, so fast rolls back A/A canaries too);
- sequential: the comparison with stable (`compare: {against: stable}` on the success rate,
  `compare: {slowerThan: 25ms}` on the latency), no threshold line.

The cases: the canary fails 20%, 5% or 2% of requests while stable fails 1%; the canary answers
in 30 ms where stable takes 5 (neither fails); A/A, both failing 1%. Within a run the policies
alternate: each case runs every policy in turn, the order rotating from case to case and from
repeat to repeat, so a slow minute of the shared machine does not land on one policy.

How to read it. Per rollout, and then per case and policy as a median over `--repeat`:

- seconds: from the start of the first second holding a bad answer (a canary 5xx; in the latency
  case any canary answer, each slower than 25 ms) to the end of the last second holding any
  canary answer, i.e. until the data plane served 0% canary, from the load generator's records
  (1 s resolution). A policy that did not roll the canary back says "no rollback in N s"
  (N: from that first bad answer to the terminal phase), never a number of seconds;
- bad requests: the canary's 5xx (latency case: its answers) that users got, up to 2 s after
  the terminal phase; stable's own 5xx are counted apart;
- A/A: a rollback is a false one, counted as "false rollbacks k of n".

The last lines hold the issue's target: the sequential judge reaches 0% for the 5% and 2% cases
in at most half the seconds of the fast policy, and never rolls back the A/A canary. The mesh's
draws (which request fails) are not seeded: each app process seeds its own generator, so runs
differ; `--repeat` is what narrows the medians.

Run: `.venv/bin/python benchmarks/bench_blast_radius.py [--cases errors-5,aa]
[--policies fast,sequential] [--repeat 1] [--rate 40]`; a quick subset (two cases, two policies,
one repeat) takes two to four minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import _blast_measure
import _blast_policies
import _mesh_runs

from canary.demo import scenario

TARGET_RATIO = 0.5
TARGET_CASES = ("errors-5", "errors-2")
AA_CASE = "aa"
MESSAGE_CHARS = 140

Results = dict[tuple[str, str], list[_blast_measure.Blast]]


def _names(value: str, known: Sequence[str], what: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in chosen if name not in known]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"{what}: {', '.join(unknown) or 'none given'}; choose from {', '.join(known)}"
        )
    return chosen


def load_for(case: _blast_policies.Case, args: argparse.Namespace) -> _mesh_runs.Load:
    return _mesh_runs.Load(
        rate=args.rate,
        canary_error_rate=case.canary_error_rate,
        stable_error_rate=case.stable_error_rate,
        canary_latency_ms=case.canary_latency_ms,
        canary_jitter_ms=case.canary_jitter_ms,
        timeout_s=args.timeout,
    )


def rotated(items: Sequence[_blast_policies.Policy], by: int) -> list[_blast_policies.Policy]:
    shift = by % len(items)
    return [*items[shift:], *items[:shift]]


def run_all(args: argparse.Namespace, logs: Path) -> Results:
    chosen = _blast_policies.policies(args.policies)
    canary_version = scenario.plan(chosen[0].objects).canary_version
    results: Results = {(case, policy.name): [] for case in args.cases for policy in chosen}
    turn = 0
    for repeat in range(args.repeat):
        print(f"repeat {repeat + 1}/{args.repeat}:", flush=True)
        for case_name in args.cases:
            case = _blast_policies.CASES[case_name]
            for policy in rotated(chosen, turn):
                log_path = logs / f"{case.name}-{policy.name}-{repeat + 1}.log"
                rollout = _mesh_runs.run(
                    policy.objects,
                    load_for(case, args),
                    log_path=log_path,
                    log_level=args.log_level,
                )
                result = _blast_measure.measure(rollout, case, canary_version)
                results[(case.name, policy.name)].append(result)
                print_run(case, policy, result, log_path, args)
                if not args.keep_logs and not _odd(case, result):
                    log_path.unlink(missing_ok=True)
            turn += 1
    return results


def _odd(case: _blast_policies.Case, result: _blast_measure.Blast) -> bool:
    """A run worth its log: a timeout, or a false rollback."""
    return result.timed_out or (case.healthy and result.rolled_back)


def print_run(
    case: _blast_policies.Case,
    policy: _blast_policies.Policy,
    result: _blast_measure.Blast,
    log_path: Path,
    args: argparse.Namespace,
) -> None:
    what = "canary answers, all slow" if case.slow else "canary 5xx"
    ended = "-" if result.ended_at_s is None else f"{result.ended_at_s:+.1f} s"
    verdict = "FALSE ROLLBACK" if case.healthy and result.rolled_back else result.outcome()
    print(
        f"  {case.name:<10} {policy.name:<10} {verdict}; {result.bad} bad ({what}) of "
        f"{result.canary_answers} canary answers; stable 5xx {result.stable_failed}, envoy 5xx "
        f"{result.envoy_failed}, no answer {result.no_response}, load missed {result.missed}; "
        f"{result.phase} at {ended}",
        flush=True,
    )
    if result.message:
        print(f"  {'':<21} {result.message[:MESSAGE_CHARS]}")
    if args.timeline:
        print(f"  {'':<21} {result.timeline}")
    if _odd(case, result) or args.keep_logs:
        print(f"  {'':<21} log: {log_path}")


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summary_cell(runs: Sequence[_blast_measure.Blast], healthy: bool) -> tuple[str, str, str]:
    """(rollbacks, seconds, bad requests) for one case and policy."""
    back = [run for run in runs if run.rolled_back]
    rollbacks = f"{len(back)} of {len(runs)}" + (" FALSE" if healthy and back else "")
    seconds = median([float(run.seconds) for run in back if run.seconds is not None])
    if seconds is None:
        longest = max((run.ended_at_s or 0.0 for run in runs), default=0.0)
        shown = f"no rollback in {longest:.0f} s"
    else:
        shown = f"{seconds:g} s" + ("" if len(back) == len(runs) else f" ({len(back)} runs)")
    bad = median([float(run.bad) for run in runs])
    return rollbacks, shown, "-" if bad is None else f"{bad:g}"


def print_summary(args: argparse.Namespace, results: Results) -> None:
    label = "median " if args.repeat > 1 else ""
    print(f"\nper case and policy ({label}over {args.repeat} repeat(s)):")
    header = ("case", "policy", "rollbacks", "seconds to 0% canary", "bad requests")
    widths = (11, 11, 14, 26, 12)
    print("  " + "".join(f"{name:<{width}}" for name, width in zip(header, widths, strict=True)))
    for (case_name, policy), runs in results.items():
        healthy = _blast_policies.CASES[case_name].healthy
        cells = (case_name, policy, *summary_cell(runs, healthy))
        print("  " + "".join(f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=True)))


def print_target(results: Results) -> None:
    """The issue's "Done when", as far as this run's cases and policies reach."""
    print("\ntarget: sequential <= 1/2 of fast's seconds for 5% and 2%; no A/A rollback:")
    for case_name in TARGET_CASES:
        sequential = results.get((case_name, "sequential"))
        for baseline in ("fast", "fast-95"):
            fast = results.get((case_name, baseline))
            if fast is None or sequential is None:
                continue
            print(f"  {case_name} against {baseline}: {_ratio(sequential, fast, baseline)}")
    for baseline in ("fast", "fast-95"):
        runs = results.get((AA_CASE, baseline))
        if runs is not None:
            false = sum(run.rolled_back for run in runs)
            print(f"  aa: {baseline} false rollbacks {false} of {len(runs)}")
    aa = results.get((AA_CASE, "sequential"))
    if aa is not None:
        false = sum(run.rolled_back for run in aa)
        verdict = "met" if false == 0 else "NOT met"
        print(f"  aa: sequential false rollbacks {false} of {len(aa)} ({verdict})")


def _ratio(
    mine: Sequence[_blast_measure.Blast], theirs: Sequence[_blast_measure.Blast], baseline: str
) -> str:
    ours = median([float(run.seconds) for run in mine if run.seconds is not None])
    base = median([float(run.seconds) for run in theirs if run.seconds is not None])
    missed = sum(not run.rolled_back for run in mine)
    if ours is None:
        return f"sequential never rolled back ({len(mine)} runs): NOT met"
    if base is None:
        return f"sequential {ours:g} s; {baseline} never rolled back: met ({baseline} has no time)"
    verdict = "met" if ours <= TARGET_RATIO * base + 1e-9 and not missed else "NOT met"
    misses = f", {missed} run(s) not rolled back" if missed else ""
    return f"sequential {ours:g} s / {baseline} {base:g} s = {ours / base:.2f}{misses} ({verdict})"


def print_settings(args: argparse.Namespace) -> None:
    print(
        f"blast radius on the local mesh: {args.rate:g} req/s, {args.repeat} repeat(s), "
        f"at most {args.timeout:g} s a rollout; the mesh's draws are not seeded"
    )
    for name in args.cases:
        print(f"  case {name:<10} {_blast_policies.CASES[name].describe()}")
    for policy in _blast_policies.policies(args.policies):
        print(f"  policy {policy.name:<10} {policy.describe()}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cases = tuple(_blast_policies.CASES)
    policies = _blast_policies.POLICY_NAMES
    parser.add_argument(
        "--cases",
        type=lambda value: _names(value, cases, "unknown case"),
        default=cases,
        help=f"comma-separated, of {', '.join(cases)} (default: all)",
    )
    parser.add_argument(
        "--policies",
        type=lambda value: _names(value, policies, "unknown policy"),
        default=policies,
        help=f"comma-separated, of {', '.join(policies)} (default: all)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rollouts per case and policy")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per rollout, at most")
    parser.add_argument("--timeline", action="store_true", help="print each run's events, checks")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep every run's controller log, not only odd ones",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rate <= 0 or args.timeout <= 0:
        parser.error("--repeat must be at least 1, --rate and --timeout positive")
    # Every tick's phase and weight is a debug line: worth having in a log someone asked to keep.
    args.log_level = "debug" if args.keep_logs else "info"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = " ".join([".venv/bin/python", "benchmarks/bench_blast_radius.py", *sys.argv[1:]])
    logs = Path(tempfile.mkdtemp(prefix="bench-blast-radius-"))
    started = time.monotonic()
    print_settings(args)
    results = run_all(args, logs)
    print_summary(args, results)
    print_target(results)
    print(f"command: {command}  ({time.monotonic() - started:.0f} s)")
    if any(logs.iterdir()):
        print(f"controller logs: {logs}")
    else:
        logs.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
