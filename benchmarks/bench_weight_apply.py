"""Time a weight change on the local mesh: from the router's write to Envoy serving the new split.

The change goes the way the controller makes it: `LocalRouter.set_weights` writes the
VirtualService into a LocalStore and pushes the store's objects through the mesh's Pilot, which
rewrites the client-side Envoy's RDS file. Each change flips the canary between 0% and 100%, so
a single answer tells which split served it. From the moment `set_weights` is called, two clocks
run side by side:

- acknowledged: the client-side Envoy's `/config_dump` shows the config version the push
  returned (`LocalMesh.applied_version()`, what the controller waits for before a step's clock
  starts);
- serving: a request to the client-side Envoy, with the service's Host header as the load
  generator sends it, is answered by the version the new split names.

Both waits are bounded in time and in count; a change that misses either bound is counted as a
timeout and printed, never silently left out. The target is the p99 users of Istio expect from a
config push: 1 s. Run: `.venv/bin/python benchmarks/bench_weight_apply.py [--changes 50]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.demo import scenario
from canary.engine.actions import SetWeights
from canary.localmesh.mesh import LocalMesh, VersionSpec
from canary.localmesh.router import LocalRouter
from canary.localmesh.store import LocalStore
from canary.ports import RouteRef

TARGET_P99_S = 1.0
# Each wait gives up after this long, or after this many polls or requests.
WAIT_LIMIT_S = 5.0
MAX_POLLS = 5_000
MAX_PROBES = 5_000
# Requests after the first answer from the new version, to catch a split that flips back.
FOLLOW_UP_PROBES = 5
STABLE, CANARY = "v1", "v2"


@dataclass(frozen=True, slots=True)
class Change:
    canary_weight: int
    write_s: float
    acknowledged_s: float | None
    serving_s: float | None
    polls: int
    probes: int
    # Answers that were neither the old nor the new version's 200 (e.g. Envoy's own 503).
    odd: Counter[str]
    stale_after_switch: int


class RecordingPlane:
    """The mesh as the router's DataPlane, remembering which config version each push made."""

    def __init__(self, mesh: LocalMesh) -> None:
        self.mesh = mesh
        self.last_pushed: int | None = None

    def push(
        self,
        virtual_services: Sequence[dict[str, Any]],
        destination_rules: Sequence[dict[str, Any]],
        gateways: Sequence[dict[str, Any]] = (),
        peer_authentications: Sequence[dict[str, Any]] | None = None,
    ) -> int:
        self.last_pushed = self.mesh.push(
            virtual_services,
            destination_rules,
            gateways=gateways,
            peer_authentications=peer_authentications,
        )
        return self.last_pushed

    def applied_version(self) -> int | None:
        return self.mesh.applied_version()


class Prober:
    """Requests to the client-side Envoy on one kept-alive connection, as a user agent sends."""

    def __init__(self, url_port: int, host: str) -> None:
        self.port = url_port
        self.headers = {"Host": host}
        self.conn: http.client.HTTPConnection | None = None

    def ask(self) -> str:
        """The version that answered, or a label for anything else (`503`, `no-response`)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_LIMIT_S)
        try:
            self.conn.request("GET", "/", headers=self.headers)
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return "no-response"
        if response.will_close:
            self.close()
        if response.status != 200:
            return str(response.status)
        try:
            version = json.loads(body).get("version")
        except (ValueError, AttributeError):
            return "unparsed-200"
        return version if isinstance(version, str) else "unparsed-200"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def wait_acknowledged(mesh: LocalMesh, version: int, started: float) -> tuple[float | None, int]:
    deadline = started + WAIT_LIMIT_S
    for polls in range(1, MAX_POLLS + 1):
        applied = mesh.applied_version()
        if applied is not None and applied >= version:
            return time.perf_counter() - started, polls
        if time.perf_counter() > deadline:
            return None, polls
        time.sleep(0.001)
    return None, MAX_POLLS


def wait_serving(
    prober: Prober, expected: str, started: float
) -> tuple[float | None, int, Counter[str], int]:
    deadline = started + WAIT_LIMIT_S
    odd: Counter[str] = Counter()
    for probes in range(1, MAX_PROBES + 1):
        answer = prober.ask()
        if answer == expected:
            serving = time.perf_counter() - started
            stale = sum(prober.ask() != expected for _ in range(FOLLOW_UP_PROBES))
            return serving, probes, odd, stale
        if answer not in (STABLE, CANARY):
            odd[answer] += 1
        if time.perf_counter() > deadline:
            return None, probes, odd, 0
    return None, MAX_PROBES, odd, 0


def seed(store: LocalStore, *, extra_routes: int) -> RouteRef:
    virtual_service = scenario.virtual_service()
    # Header-matched routes ahead of the managed one: a bigger route table for every push.
    virtual_service["spec"]["http"][:0] = [
        {
            "name": f"pinned-{n}",
            "match": [{"headers": {"x-user": {"exact": f"user-{n}"}}}],
            "route": [{"destination": {"host": scenario.SERVICE, "subset": STABLE}}],
        }
        for n in range(extra_routes)
    ]
    store.put(virtual_service)
    store.put(scenario.destination_rule())
    return RouteRef(
        namespace=scenario.NAMESPACE,
        virtual_service=scenario.SERVICE,
        host=scenario.SERVICE,
        route=scenario.ROUTE,
    )


def measure(changes: int, *, extra_routes: int) -> list[Change]:
    versions = [VersionSpec(STABLE), VersionSpec(CANARY)]
    results: list[Change] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-weight-") as scratch,
        # No load generator: the probes below are the only traffic.
        LocalMesh(
            service=scenario.SERVICE,
            namespace=scenario.NAMESPACE,
            versions=versions,
            workdir=Path(scratch) / "mesh",
            rate=0,
            instances_per_version=1,
        ) as mesh,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench") as pool,
    ):
        store = LocalStore(Path(scratch) / "state")
        ref = seed(store, extra_routes=extra_routes)
        plane = RecordingPlane(mesh)
        router = LocalRouter(store, plane)
        prober = Prober(mesh.client_port, mesh.service)
        # The first read publishes the seeded objects; wait until Envoy serves them.
        first = time.perf_counter()
        while not router.read(ref).applied and time.perf_counter() - first < 10.0:
            time.sleep(0.01)
        try:
            for index in range(changes):
                weight = 100 if index % 2 == 0 else 0
                expected = CANARY if weight == 100 else STABLE
                started = time.perf_counter()
                # Probing starts before the write, so the switch is seen as soon as it happens,
                # even while set_weights is still writing the store.
                serve = pool.submit(wait_serving, prober, expected, started)
                router.set_weights(ref, SetWeights(STABLE, CANARY, weight))
                write_s = time.perf_counter() - started
                assert plane.last_pushed is not None
                ack = pool.submit(wait_acknowledged, mesh, plane.last_pushed, started)
                acknowledged_s, polls = ack.result()
                serving_s, probes, odd, stale = serve.result()
                results.append(
                    Change(weight, write_s, acknowledged_s, serving_s, polls, probes, odd, stale)
                )
                # Apart, so one change's tail never overlaps the next change's start.
                time.sleep(0.05)
        finally:
            prober.close()
    return results


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile, never interpolated: of 50 changes, p99 is the slowest one."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


def summary_line(name: str, values: Sequence[float | None], *, judged: bool = True) -> str:
    done = [v for v in values if v is not None]
    missed = len(values) - len(done)
    if not done:
        return f"  {name:<13} no change completed within {WAIT_LIMIT_S:g} s"
    line = (
        f"  {name:<13} median {statistics.median(done) * 1000:7.1f} ms   "
        f"p99 {quantile(done, 0.99) * 1000:7.1f} ms   max {max(done) * 1000:7.1f} ms   "
        f"timeouts {missed}"
    )
    if not judged:
        return line
    verdict = "within" if missed == 0 and quantile(done, 0.99) <= TARGET_P99_S else "OVER"
    return f"{line}   ({verdict} the p99 target of {TARGET_P99_S * 1000:.0f} ms)"


def report(results: list[Change], *, extra_routes: int, command: str) -> None:
    odd: Counter[str] = Counter()
    for change in results:
        odd.update(change.odd)
    stale = sum(change.stale_after_switch for change in results)
    print(
        f"weight apply on the local mesh: {len(results)} changes alternating canary 0%<->100%, "
        f"{extra_routes} extra routes in the VirtualService"
    )
    print(summary_line("set_weights", [c.write_s for c in results], judged=False))
    print(summary_line("acknowledged", [c.acknowledged_s for c in results]))
    print(summary_line("serving", [c.serving_s for c in results]))
    print(
        f"  probes per change: median {statistics.median(c.probes for c in results):g}, "
        f"max {max(c.probes for c in results)}; config polls: median "
        f"{statistics.median(c.polls for c in results):g}"
    )
    print(
        f"  answers other than v1/v2 during changes: {dict(odd) or 'none'}; old version after "
        f"the switch: {stale} of {FOLLOW_UP_PROBES * len(results)} follow-up requests"
    )
    slowest = sorted(
        enumerate(results, 1), key=lambda item: item[1].serving_s or WAIT_LIMIT_S, reverse=True
    )[:3]
    print(
        "  slowest to serve: "
        + ", ".join(
            f"#{n} (to {c.canary_weight}%: write {c.write_s * 1000:.0f} ms, "
            f"serving {_ms(c.serving_s)}, acknowledged {_ms(c.acknowledged_s)})"
            for n, c in slowest
        )
    )
    print(f"  command: {command}")


def _ms(seconds: float | None) -> str:
    return "timeout" if seconds is None else f"{seconds * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=50, help="weight changes (default 50)")
    parser.add_argument(
        "--extra-routes",
        type=int,
        default=0,
        help="header-matched routes ahead of the managed one, for a bigger push (default 0)",
    )
    args = parser.parse_args(argv)
    if args.changes < 1 or args.extra_routes < 0:
        parser.error("--changes must be positive and --extra-routes not negative")
    command = " ".join([".venv/bin/python", "benchmarks/bench_weight_apply.py", *sys.argv[1:]])
    results = measure(args.changes, extra_routes=args.extra_routes)
    # A figure, not a gate: the verdict against the target is printed, the exit code stays 0.
    report(results, extra_routes=args.extra_routes, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
