"""Many Canaries on a real API server: tick latency, API requests per tick, controller memory.

For each size (100 and 1,000 by default) the benchmark creates that many Canaries, each with its
own VirtualService and DestinationRule, in a fresh namespace of the test API server
(tests/kubeenv), and starts `canary run` as its own process under the controller's ClusterRole.
Each Canary has one step (50%) and no metrics, so every one of them rolls out and is promoted on
time alone; then they all sit Succeeded and keep ticking every second. Figures:

- rollout: the seconds until every Canary is Succeeded, and tick latency and API requests per
  tick while they roll out (a tick that moves a step writes the status and the weights);
- steady: tick latency p50/p99 and the share of ticks that made no API request at all, over
  `--seconds` of nothing to do (target: every tick, since reads come from the watch cache);
- memory: the controller's peak resident set (target: at most 150 MB) and the ticks per second
  the controller sustained.

Tick latency and requests come from the controller's own `tick.cost` log lines (one per tick,
measured inside the process). Run:
`.venv/bin/python benchmarks/bench_kube_scale.py [--canaries 100 1000] [--seconds 20]`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from canary.adapters.kube.rest import (  # noqa: E402
    CANARY,
    DESTINATION_RULE,
    VIRTUAL_SERVICE,
    Rest,
    connect,
)
from canary.demo import scenario  # noqa: E402
from tests.e2e.kube.harness import ControllerProcess  # noqa: E402
from tests.kubeenv import assets, cluster, crds  # noqa: E402

RBAC = REPO / "deploy" / "rbac.yaml"
TICK_TARGET_P99 = 0.050
MEMORY_TARGET_MB = 150.0


def objects(namespace: str, index: int) -> list[tuple[str, dict[str, Any]]]:
    name = f"svc-{index:04d}"
    vs, dr, canary = scenario.virtual_service(), scenario.destination_rule(), scenario.canary()
    for body in (vs, dr, canary):
        body["metadata"] = {"name": name, "namespace": namespace}
    vs["spec"]["hosts"] = [name]
    for entry in vs["spec"]["http"][0]["route"]:
        entry["destination"]["host"] = name
    dr["spec"]["host"] = name
    canary["spec"]["service"]["host"] = name
    canary["spec"]["analysis"] = {
        "interval": "3s",
        "checkInterval": "1s",
        "threshold": 1,
        "stepWeights": [50],
    }
    return [
        (VIRTUAL_SERVICE.path(namespace), vs),
        (DESTINATION_RULE.path(namespace), dr),
        (CANARY.path(namespace), canary),
    ]


def create_all(rest: Rest, namespace: str, count: int) -> None:
    def create(index: int) -> None:
        for path, body in objects(namespace, index):
            rest.post(path, body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))


def phases(rest: Rest, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    listed = rest.get(CANARY.path(namespace), limit=5000)
    for item in listed.get("items") or []:
        phase = str((item.get("status") or {}).get("phase") or "none")
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tick_costs(log: Path, since: float, until: float) -> list[tuple[float, int]]:
    costs = []
    for line in log.read_text(errors="replace").splitlines():
        if '"tick.cost"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            # Not ours to judge here; tests/e2e/kube checks that every log line is JSON.
            print(f"  (unreadable log line: {line[:160]})")
            continue
        moment = datetime.fromisoformat(entry["timestamp"]).timestamp()
        if since <= moment <= until:
            costs.append((float(entry["seconds"]), int(entry["requests"])))
    return costs


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


def describe(label: str, costs: list[tuple[float, int]]) -> str:
    if not costs:
        return f"  {label}: no ticks"
    seconds = [cost[0] for cost in costs]
    requests = [cost[1] for cost in costs]
    silent = sum(1 for count in requests if count == 0)
    return (
        f"  {label}: {len(costs)} ticks, latency p50 {quantile(seconds, 0.5) * 1000:.2f} ms, "
        f"p99 {quantile(seconds, 0.99) * 1000:.2f} ms, max {max(seconds) * 1000:.1f} ms; "
        f"API requests per tick {sum(requests) / len(costs):.3f} "
        f"(ticks with none: {silent}/{len(costs)} = {silent / len(costs):.1%})"
    )


def run_size(kube: cluster.KubeCluster, rest: Rest, count: int, seconds: float, work: Path) -> None:
    namespace = f"bench-{count}-{int(time.time())}"
    kube.create_namespace(namespace)
    started = time.monotonic()
    create_all(rest, namespace, count)
    print(f"{count} Canaries: created {3 * count} objects in {time.monotonic() - started:.1f} s")
    controller = ControllerProcess(
        kube, work / namespace, "http://127.0.0.1:1", identity=f"bench-{count}"
    )
    controller.lease_namespace = "canary-system"
    peak = 0.0
    controller.start()
    assert controller.process is not None
    pid = controller.process.pid
    try:
        rollout_from = time.time()
        deadline = time.monotonic() + 60 + count * 0.2
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(pid))
            counts = phases(rest, namespace)
            if counts.get("Succeeded", 0) == count:
                break
            time.sleep(0.5)
        rollout_until = time.time()
        print(f"  rollout: all Succeeded after {rollout_until - rollout_from:.1f} s ({counts})")
        steady_from = time.time() + 2
        end = time.monotonic() + seconds + 2
        while time.monotonic() < end:
            peak = max(peak, rss_mb(pid))
            time.sleep(0.5)
        steady_until = time.time()
        steady = tick_costs(controller.log_path, steady_from, steady_until)
        print(describe("rollout", tick_costs(controller.log_path, rollout_from, rollout_until)))
        print(describe("steady", steady))
        rate = len(steady) / max(1e-9, steady_until - steady_from)
        p99 = quantile([cost[0] for cost in steady], 0.99)
        silent = all(cost[1] == 0 for cost in steady)
        print(
            f"  controller: peak RSS {peak:.1f} MB (target <= {MEMORY_TARGET_MB:.0f}), "
            f"{rate:.0f} ticks/s sustained; steady p99 {p99 * 1000:.2f} ms "
            f"(target <= {TICK_TARGET_P99 * 1000:.0f}); "
            f"no request on an idle tick: {'yes' if silent else 'NO'}"
        )
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="Keep the controller logs.")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="canary-bench-scale-"))
    try:
        with cluster.start(assets.kube_bin_dir()) as kube:
            crds.install(kube, sorted((REPO / "deploy" / "crds").glob("*.yaml")))
            crds.install(kube, [assets.istio_crds()])
            kube.kubectl("apply", "--filename", str(RBAC), check=True)
            cluster.poll(
                "RBAC to let the controller list Canaries",
                lambda: None if kube.can_i("list", "canaries.canary.dev") else "not yet",
                timeout=30.0,
            )
            rest = Rest(connect(str(kube.admin_kubeconfig)))
            for count in args.canaries:
                run_size(kube, rest, count, args.seconds, work)
    finally:
        if args.keep:
            print(f"controller logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
