"""Trace checks against the real Jaeger (tests/jaeger): spans made to measure go in over OTLP,
the adapter reads them back through `/api/traces`, and the controller's own tick judges them.

Each test names a service of its own, so the module's one Jaeger serves them all. The rollouts
run the real Reconciler (observe, decide, act) with in-memory fakes for the route and the
store, which other tests prove against the API server and Envoy: here what is real is the
evidence, and what happens to a rollout when Jaeger is slow or goes away.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from canary.adapters.jaeger import JaegerSources, JaegerTraces
from canary.api import builtins
from canary.api.metric_template import MetricTemplate
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, CheckResult, MeasurementKind, Phase
from canary.api.traces import JaegerProvider
from canary.controller.clock import SystemClock
from canary.controller.queries import ResolvedQuery
from canary.controller.reconcile import Reconciler
from canary.controller.sources import Sources
from canary.controller.traces import SpanCheck, spans_of
from canary.engine.observation import Measurement
from canary.fakes import (
    FakeMetrics,
    FakeNotifier,
    FakeRouter,
    FakeSecrets,
    FakeStore,
    FakeWebhooks,
    FakeWorkloads,
)
from canary.localmesh import jaeger as localjaeger
from canary.localmesh import procs
from canary.ports import CanaryKey, RouteRef, StoredCanary, SubsetRef
from tests.jaeger import spans as otlp
from tests.jaeger.fixtures import DIMENSIONS

OPERATION = "POST /checkout"


def service() -> str:
    return f"shop-{secrets.token_hex(3)}"


def backend(address: str, name: str, **overrides: Any) -> JaegerProvider:
    values: dict[str, Any] = {
        "address": address,
        "service": name,
        "operation": OPERATION,
        "versionTag": "subset",
        "versionValue": "{{ subset }}",
        "compute": "latency",
        "percentile": 99,
        "minSpans": 20,
        "timeout": "2s",
        **overrides,
    }
    return JaegerProvider.model_validate(values)


def ask(provider: JaegerProvider, window: float = 60.0) -> Measurement:
    variables = {"subset": "v2", "version": "v2", "interval": f"{window:g}s"}
    question = ResolvedQuery(
        query="",
        requests_query=None,
        template=None,
        variables=variables,
        stable_variables={**variables, "subset": "v1", "version": "v1"},
        window=window,
    )
    check = SpanCheck(JaegerTraces(provider.address), provider)
    return check.measure(question, datetime.now(UTC) + timedelta(seconds=1))


def send(
    handle: localjaeger.JaegerHandle,
    name: str,
    subset: str,
    durations_ms: list[float],
    *,
    errors: int = 0,
    operation: str = OPERATION,
) -> list[otlp.Span]:
    made = [
        otlp.server_span(
            name,
            operation,
            duration_ms=duration,
            error=index < errors,
            attributes={"subset": subset, "http.method": "POST"},
        )
        for index, duration in enumerate(durations_ms)
    ]
    otlp.send(handle.otlp_traces_url, made)
    return made


def settled(provider: JaegerProvider, spans: int, *, timeout: float = 10.0) -> Measurement:
    """Jaeger stores what it took a moment later: ask until `spans` are seen (bounded)."""
    deadline = time.monotonic() + timeout
    measured = ask(provider)
    while time.monotonic() < deadline:
        if measured.spans is not None and measured.spans.spans >= spans:
            return measured
        time.sleep(0.2)
        measured = ask(provider)
    return measured


def test_spans_present_give_the_percentile_the_errors_and_the_worst_traces(
    jaeger: localjaeger.JaegerHandle,
) -> None:
    name = service()
    canary = send(jaeger, name, "v2", [float(ms) for ms in range(1, 51)], errors=2)
    send(jaeger, name, "v1", [5.0] * 50)
    send(jaeger, name, "v2", [900.0] * 3, operation="GET /browse")
    latency = settled(backend(jaeger.query_url, name), 50)
    assert latency.kind is MeasurementKind.VALUE
    # Nearest rank: the 50th of 50 durations is the p99, the slowest checkout (not a browse).
    assert latency.value == pytest.approx(50.0, abs=0.01)
    assert latency.spans is not None
    assert latency.spans.spans == 50
    assert latency.spans.operation == OPERATION
    assert not latency.spans.sampled
    slowest = [span.trace_id for span in sorted(canary, key=lambda s: -s.duration_us)[:3]]
    assert latency.spans.examples == slowest
    errors = ask(backend(jaeger.query_url, name, compute="errorRatio", percentile=None))
    assert errors.value == pytest.approx(4.0)
    assert errors.spans is not None
    assert set(errors.spans.examples) == {span.trace_id for span in canary[:2]}
    compared = ask(backend(jaeger.query_url, name, compare="ratio"))
    assert compared.value == pytest.approx(10.0, rel=0.01)
    assert compared.spans is not None
    assert compared.spans.stable_value == pytest.approx(5.0, abs=0.01)
    assert compared.spans.stable_spans == 50


def test_a_limit_below_the_traces_in_the_window_is_said_to_be_a_sample(
    jaeger: localjaeger.JaegerHandle,
) -> None:
    name = service()
    send(jaeger, name, "v2", [10.0] * 30)
    settled(backend(jaeger.query_url, name), 30)
    measured = ask(backend(jaeger.query_url, name, limit=25))
    assert measured.kind is MeasurementKind.VALUE
    assert measured.spans is not None
    assert measured.spans.sampled
    assert measured.spans.spans == 25


def test_no_spans_too_few_spans_and_an_unknown_operation_are_no_data(
    jaeger: localjaeger.JaegerHandle,
) -> None:
    name = service()
    nothing = ask(backend(jaeger.query_url, name))
    assert nothing.kind is MeasurementKind.NO_DATA
    assert f"no spans of {name} 'POST /checkout' with subset=v2" in nothing.message
    send(jaeger, name, "v2", [10.0] * 5)
    few = settled(backend(jaeger.query_url, name), 5)
    assert few.kind is MeasurementKind.NO_DATA
    assert "5 spans of 'POST /checkout' with subset=v2" in few.message
    assert "fewer than minSpans 20" in few.message
    unknown = ask(backend(jaeger.query_url, name, operation="POST /refund"))
    assert unknown.kind is MeasurementKind.NO_DATA
    assert "no spans" in unknown.message


# The rollouts below run the controller's tick on a real clock against a Jaeger of their own.

KEY = CanaryKey("shop", "checkout")
ROUTE = RouteRef(
    namespace="shop",
    virtual_service="checkout",
    host="checkout",
    route=None,
    destination_rule="checkout",
    subsets=(SubsetRef("v1"), SubsetRef("v2")),
)


@dataclass
class Feeder:
    """Spans for both versions, a batch every `every` seconds, until stopped (bounded)."""

    handle: localjaeger.JaegerHandle
    name: str
    canary_ms: float = 10.0
    every: float = 0.2
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Feeder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        for _ in range(3000):
            if self._stop.wait(self.every):
                return
            try:
                send(self.handle, self.name, "v2", [self.canary_ms] * 5)
                send(self.handle, self.name, "v1", [10.0] * 5)
                self.sent += 10
            except otlp.SendFailed:
                # Jaeger was stopped on purpose; the feeder just stops feeding.
                pass


@pytest.fixture
def own_jaeger(jaeger_binary: Path, tmp_path: Path) -> Iterator[localjaeger.JaegerHandle]:
    with procs.Supervisor(tmp_path) as supervisor:
        handle = localjaeger.start_jaeger(
            supervisor, workdir=tmp_path / "jaeger", dimensions=DIMENSIONS, binary=jaeger_binary
        )
        try:
            yield handle
        finally:
            with_cont(handle)
            localjaeger.stop(handle)


def with_cont(handle: localjaeger.JaegerHandle) -> None:
    # A test may have stopped it with SIGSTOP; a stopped process would never see SIGTERM.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(handle.process.pid, signal.SIGCONT)


def rollout(address: str, name: str) -> tuple[Reconciler, FakeStore, FakeRouter]:
    spec = CanarySpec.model_validate(
        {
            "service": {"host": "checkout"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {
                "interval": "2s",
                "checkInterval": "1s",
                "threshold": 2,
                "stepWeights": [20, 60],
                "metrics": [
                    {
                        "name": "checkout-p99",
                        "templateRef": {"name": "checkout-spans"},
                        "interval": "3s",
                        "thresholdRange": {"max": 100},
                    }
                ],
            },
        }
    )
    template = MetricTemplate.model_validate(
        {
            "metadata": {"name": "checkout-spans", "namespace": "shop"},
            "spec": {"provider": {"jaeger": backend(address, name, minSpans=5).to_wire()}},
        }
    )
    store = FakeStore(
        stored={KEY: StoredCanary(KEY, spec, CanaryStatus())},
        templates={("shop", "checkout-spans"): template},
    )
    router = FakeRouter(weights={ROUTE: {"v1": 100, "v2": 0}})
    reconciler = Reconciler(
        store=store,
        workloads=FakeWorkloads(),
        router=router,
        notifier=FakeNotifier(),
        clock=SystemClock(),
        sources=Sources(
            builtin=FakeMetrics(),
            webhooks=FakeWebhooks(),
            secrets=FakeSecrets(),
            metrics={JaegerProvider: spans_of(JaegerSources())},
        ),
        query_set=builtins.QuerySet.ENVOY,
    )
    return reconciler, store, router


def drive(
    reconciler: Reconciler,
    store: FakeStore,
    *,
    until: Any,
    timeout: float = 40.0,
    on_tick: Any = None,
) -> CanaryStatus:
    deadline = time.monotonic() + timeout
    status = store.stored[KEY].status
    while time.monotonic() < deadline:
        reconciler.tick(KEY)
        status = store.stored[KEY].status
        if on_tick is not None:
            on_tick(status)
        if until(status):
            return status
        time.sleep(0.25)
    raise AssertionError(f"no end within {timeout}s: {status.phase} at {status.canary_weight}")


def records(status: CanaryStatus) -> list[CheckResult]:
    return [record for record in status.history if record.name == "checkout-p99"]


def test_a_rollout_on_healthy_spans_is_promoted(own_jaeger: localjaeger.JaegerHandle) -> None:
    name = service()
    reconciler, store, _router = rollout(own_jaeger.query_url, name)
    with Feeder(own_jaeger, name):
        status = drive(
            reconciler, store, until=lambda s: s.phase in (Phase.SUCCEEDED, Phase.FAILED)
        )
    assert status.phase is Phase.SUCCEEDED, status.message
    judged = records(status)
    assert judged
    assert all(record.verdict == "pass" for record in judged)
    assert all(record.spans is not None and record.spans.spans >= 5 for record in judged)


def test_a_slow_canary_is_rolled_back_and_its_record_names_traces_jaeger_has(
    own_jaeger: localjaeger.JaegerHandle,
) -> None:
    name = service()
    reconciler, store, router = rollout(own_jaeger.query_url, name)
    with Feeder(own_jaeger, name, canary_ms=400.0):
        status = drive(
            reconciler, store, until=lambda s: s.phase in (Phase.SUCCEEDED, Phase.FAILED)
        )
    assert status.phase is Phase.FAILED
    assert router.weights[ROUTE] == {"v1": 100, "v2": 0}
    failed = [record for record in records(status) if record.verdict == "fail"]
    assert failed
    assert failed[-1].value == pytest.approx(400.0, abs=1.0)
    assert failed[-1].spans is not None
    example = failed[-1].spans.examples[0]
    with urllib.request.urlopen(f"{own_jaeger.query_url}/api/traces/{example}", timeout=5) as got:
        trace = json.load(got)
    assert trace["data"][0]["traceID"] == example


def test_jaeger_down_mid_rollout_never_promotes(own_jaeger: localjaeger.JaegerHandle) -> None:
    name = service()
    reconciler, store, router = rollout(own_jaeger.query_url, name)

    def stop_once_a_step_passed(status: CanaryStatus) -> None:
        if status.step >= 1 and own_jaeger.process.alive():
            localjaeger.stop(own_jaeger)

    with Feeder(own_jaeger, name):
        status = drive(
            reconciler,
            store,
            until=lambda s: s.phase in (Phase.SUCCEEDED, Phase.FAILED),
            on_tick=stop_once_a_step_passed,
        )
    assert status.phase is Phase.FAILED
    assert router.weights[ROUTE] == {"v1": 100, "v2": 0}
    errors = [record for record in records(status) if record.kind is MeasurementKind.ERROR]
    assert errors
    assert "connection refused" in errors[-1].message
    assert all(weights.canary_weight < 100 for _, weights in router.writes)


def test_jaeger_answering_past_the_timeout_is_an_error_and_never_promotes(
    own_jaeger: localjaeger.JaegerHandle,
) -> None:
    name = service()
    reconciler, store, router = rollout(own_jaeger.query_url, name)

    def freeze_once_a_step_passed(status: CanaryStatus) -> None:
        # SIGSTOP: Jaeger's sockets still take connections (the kernel's backlog) and no answer
        # ever comes, the way a Jaeger stuck in a long GC or on a dead disk looks.
        if status.step >= 1:
            os.killpg(own_jaeger.process.pid, signal.SIGSTOP)

    with Feeder(own_jaeger, name):
        status = drive(
            reconciler,
            store,
            until=lambda s: s.phase in (Phase.SUCCEEDED, Phase.FAILED),
            on_tick=freeze_once_a_step_passed,
        )
    with_cont(own_jaeger)
    assert status.phase is Phase.FAILED
    errors = [record for record in records(status) if record.kind is MeasurementKind.ERROR]
    assert errors
    assert "within 2s" in errors[-1].message
    assert all(weights.canary_weight < 100 for _, weights in router.writes)
