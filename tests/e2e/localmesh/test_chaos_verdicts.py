"""What a chaos verdict reads, against real Envoys and Prometheus: a delayed canary behind a
tight connection pool makes the callers' circuit breaker shed load, and the verdict's queries
(the fault window, read at its end with PromQL's `@`) see the overflow and the canary's traffic.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from canary.adapters.prometheus import PrometheusMetrics
from canary.api import builtins
from canary.api.resources import Canary
from canary.api.status import MeasurementKind
from canary.controller import chaos_probe
from canary.demo import scenario
from canary.engine.actions import Fault, InjectFault
from canary.engine.wanted import ChaosWindow
from canary.localmesh import mesh
from canary.localmesh.router import LocalRouter
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey, RouteRef, SubsetRef

KEY = CanaryKey("default", "demo")
REF = RouteRef(
    namespace="default",
    virtual_service="demo",
    host="demo",
    route="primary",
    destination_rule="demo",
    subsets=(SubsetRef("v1"), SubsetRef("v2")),
)
FAULT_SECONDS = 8.0


def _poll(what: str, check: Callable[[], str | None], *, timeout: float) -> None:
    """Polls `check` (None: done, else why not) every 0.2 s, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    why = check()
    while why is not None:
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s: {why}"
        time.sleep(0.2)
        why = check()


def _answered_since(
    now: dict[str, dict[int, int]], before: dict[str, dict[int, int]], *, at_least: int
) -> str | None:
    counts = {
        v: sum(now.get(v, {}).values()) - sum(before.get(v, {}).values()) for v in ("v1", "v2")
    }
    return None if min(counts.values()) >= at_least else f"answers so far: {counts}"


def _scraped_after(prometheus_url: str, moment: datetime) -> str | None:
    """None once every target's last scrape (the timestamp of its `up`) is after `moment`."""
    query = urllib.parse.urlencode({"query": "min(timestamp(up))"})
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=5) as answer:
        result = json.load(answer)["data"]["result"]
    last = float(result[0]["value"][1]) if result else 0.0
    return None if last > moment.timestamp() else f"oldest last scrape at {last:.3f}"


def test_a_delayed_canary_behind_a_tight_pool_overflows_and_the_verdict_sees_it(
    tmp_path: Path, envoy_path: Path, prometheus_path: Path
) -> None:
    rule = scenario.destination_rule()
    # One connection and one waiting request per v2 host: a canary that answers in a second
    # cannot keep up with its share of 40 requests a second, so the rest must be shed at once.
    rule["spec"]["trafficPolicy"]["connectionPool"] = {
        "tcp": {"maxConnections": 1},
        "http": {"http1MaxPendingRequests": 1},
    }
    service = scenario.virtual_service()
    service["spec"]["http"][0]["route"][0]["weight"] = 50
    service["spec"]["http"][0]["route"][1]["weight"] = 50
    store = LocalStore(tmp_path / "state")
    store.put(service)
    store.put(rule)
    versions = [mesh.VersionSpec("v1"), mesh.VersionSpec("v2")]
    with mesh.LocalMesh(
        service="demo", versions=versions, workdir=tmp_path / "mesh", rate=40, duration=90
    ) as local:
        router = LocalRouter(store, local)
        deadline = time.monotonic() + 15
        while not router.read(REF).applied and time.monotonic() < deadline:
            time.sleep(0.1)
        assert router.read(REF).applied
        load = local.load
        assert load is not None
        before = load.snapshot().by_version()
        _poll(
            "traffic on both versions before the fault",
            lambda: _answered_since(load.snapshot().by_version(), before, at_least=20),
            timeout=20,
        )

        started = datetime.now(UTC)
        fault = Fault(delay_seconds=1.0, delay_percent=100)
        router.inject(
            REF,
            InjectFault("slow", "v2", fault, started + timedelta(seconds=FAULT_SECONDS)),
        )
        # A fixed wait on purpose: the fault is held for its whole window, as an experiment is.
        time.sleep(FAULT_SECONDS)
        router.clear_faults(REF)
        ended = datetime.now(UTC)
        assert router.faults(REF) == ()
        assert all(config is None for config in local.faulted().values())
        _poll(
            "every Envoy scraped after the window ended",
            lambda: _scraped_after(local.prometheus_url, ended + timedelta(seconds=1)),
            timeout=20,
        )

        spec = Canary.model_validate(scenario.canary()).spec
        reading = chaos_probe.read(
            KEY,
            spec,
            ChaosWindow("slow", "v2", started, ended),
            provider=PrometheusMetrics(local.prometheus_url),
            query_set=builtins.QuerySet.ENVOY,
        )

    for name in ("requests", "overflow", "success_rate"):
        measured = getattr(reading, name)
        assert measured.kind is MeasurementKind.VALUE, (name, measured)
    assert reading.requests.value is not None
    assert reading.requests.value >= 10
    assert reading.overflow.value is not None
    assert reading.overflow.value >= 1, "the circuit breaker shed the canary's excess load"
    assert reading.success_rate.value is not None
    assert reading.success_rate.value < 100, "what was shed, users saw as 503s"
