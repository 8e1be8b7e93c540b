"""What one trace check costs at 1,000 spans per second: query time, spans fetched, answer size.

A real Jaeger (tests/jaeger/build; built if missing) holds the last minute of a service's
spans at 1,000 spans a second (60,000 spans, half of them the canary's, a quarter of those the
judged operation's), and a feeder keeps adding 1,000 a second while checks run. Each check is
what the controller does on a tick: `SpanCheck` over `JaegerTraces`, a 1 m window, p99 of the
canary's `POST /checkout` spans, and, compared, the same for the stable version (two queries).
Printed per `limit` (traces per query): the median and p95 wall time of one check, the
matching spans it judged (both versions when compared), and about how much Jaeger answered.

Run: `.venv/bin/python benchmarks/bench_trace_check.py [--checks 20]` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from canary.adapters.jaeger import JaegerTraces  # noqa: E402
from canary.api.traces import JaegerProvider  # noqa: E402
from canary.controller.queries import ResolvedQuery  # noqa: E402
from canary.controller.traces import SpanCheck  # noqa: E402
from canary.localmesh import jaeger as localjaeger  # noqa: E402
from canary.localmesh import procs  # noqa: E402
from tests.jaeger import assets  # noqa: E402
from tests.jaeger import spans as otlp  # noqa: E402

SERVICE = "shop"
RATE = 1_000
WINDOW = 60
OPERATIONS = ("POST /checkout", "GET /browse", "GET /cart", "GET /search")


def batch(end_ns: int, count: int, spread_ns: int) -> list[otlp.Span]:
    """`count` spans ending evenly over the `spread_ns` before `end_ns`: half per version, the
    operations in turn, durations 5..50 ms."""
    made = []
    for index in range(count):
        ends = end_ns - spread_ns + (index + 1) * spread_ns // count
        duration = 5 + (index * 7) % 46
        made.append(
            otlp.Span(
                service=SERVICE,
                name=OPERATIONS[index % len(OPERATIONS)],
                start_ns=ends - duration * 1_000_000,
                end_ns=ends,
                attributes={"subset": "v2" if (index // len(OPERATIONS)) % 2 else "v1"},
            )
        )
    return made


def preload(handle: localjaeger.JaegerHandle) -> None:
    now = time.time_ns()
    for second in range(WINDOW, 0, -1):
        otlp.send(handle.otlp_traces_url, batch(now - (second - 1) * 10**9, RATE, 10**9))


def feed(handle: localjaeger.JaegerHandle, stop: threading.Event) -> None:
    for _ in range(3600):
        if stop.wait(0.1):
            return
        otlp.send(handle.otlp_traces_url, batch(time.time_ns(), RATE // 10, 10**8))


class Counting(JaegerTraces):
    """The adapter, counting each answer's size as its JSON re-encoded (about what came)."""

    answered = 0

    def _get(self, path: str, params: dict[str, str], timeout: float) -> dict[str, object]:  # type: ignore[override]
        answer = super()._get(path, params, timeout)
        Counting.answered += len(json.dumps(answer))
        return answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args()
    binary = assets.jaeger_dir() / assets.BINARY
    with tempfile.TemporaryDirectory() as tmp, procs.Supervisor(Path(tmp)) as supervisor:
        handle = localjaeger.start_jaeger(supervisor, workdir=Path(tmp) / "jaeger", binary=binary)
        try:
            started = time.monotonic()
            preload(handle)
            print(
                f"preloaded {WINDOW * RATE} spans ({WINDOW} s at {RATE}/s) in "
                f"{time.monotonic() - started:.1f} s"
            )
            stop = threading.Event()
            feeder = threading.Thread(target=feed, args=(handle, stop), daemon=True)
            feeder.start()
            try:
                print("limit  compare  median ms  p95 ms  spans judged  answer KB")
                for limit in (100, 1000, 5000):
                    for compare in (None, "ratio"):
                        measure(handle, limit, compare, args.checks)
            finally:
                stop.set()
                feeder.join(timeout=10)
        finally:
            localjaeger.stop(handle)


def measure(handle: localjaeger.JaegerHandle, limit: int, compare: str | None, checks: int) -> None:
    provider = JaegerProvider.model_validate(
        {
            "address": handle.query_url,
            "service": SERVICE,
            "operation": "POST /checkout",
            "versionTag": "subset",
            "versionValue": "{{ subset }}",
            "compute": "latency",
            "percentile": 99,
            "limit": limit,
            "timeout": "30s",
            **({"compare": compare} if compare else {}),
        }
    )
    variables = {"subset": "v2", "version": "v2", "interval": f"{WINDOW}s"}
    question = ResolvedQuery(
        query="",
        requests_query=None,
        template=None,
        variables=variables,
        stable_variables={**variables, "subset": "v1", "version": "v1"},
        window=float(WINDOW),
    )
    check = SpanCheck(Counting(handle.query_url), provider)
    times: list[float] = []
    judged = 0
    Counting.answered = 0
    for _ in range(checks):
        began = time.perf_counter()
        measured = check.measure(question, datetime.now(UTC))
        times.append((time.perf_counter() - began) * 1000)
        if measured.kind.value != "value" or measured.spans is None:
            raise SystemExit(f"no value: {measured.kind} {measured.message}")
        judged = measured.spans.spans + (measured.spans.stable_spans or 0)
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    size = Counting.answered / checks / 1024
    print(
        f"{limit:>5}  {compare or '-':>7}  {statistics.median(times):>9.1f}  {p95:>6.1f}  "
        f"{judged:>12}  {size:>9.0f}"
    )


if __name__ == "__main__":
    main()
