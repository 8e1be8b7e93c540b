"""`canary demo`: start the local mesh, hand the Canary to the real controller loop, watch it.

Nothing here decides anything: the same Reconciler and Controller that run in a cluster drive
the rollout, through the LocalStore and the local Pilot instead of the API server and istiod.
The demo only starts the world, draws what happens once a second, and judges the outcome
against what the scenario should give. With `--slack` the Canary also tells a Slack channel,
and approval clicks come back through the same Clicks as in a cluster (`slack.py` says what
the option adds, `chat.py` wires it). When a MetricTemplate asks Jaeger (the slow-traces
scenario's does), the mesh runs a local Jaeger that every Envoy sends its spans to, and every
trace check is answered by it.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from canary.adapters.jaeger import JaegerTraces
from canary.adapters.prometheus import PrometheusMetrics
from canary.api.status import TERMINAL_PHASES, CanaryStatus
from canary.demo import (
    ingress,
    report,
    scenario,
    slack,
    timeline,
    trace_summary,
    traces,
    verdicts,
    view,
    warmup,
)
from canary.demo import mtls as demo_mtls
from canary.demo.chat import DemoChat
from canary.demo.controller import caller_proxies, local_controller
from canary.demo.scenario import SLOW_MS, SLOW_RATE
from canary.demo.slack import SlackSettings
from canary.localmesh.gateway import LocalGateway
from canary.localmesh.loadgen import Request
from canary.localmesh.mesh import LocalMesh, VersionSpec
from canary.localmesh.store import LocalStore

log = structlog.get_logger("canary.demo")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    scenario: scenario.Scenario
    # The canary version's share of 503s in the bad, subtle and noisy scenarios (else none).
    error_rate: float
    stable_latency_ms: float
    canary_latency_ms: float
    rate: float
    timeout: float
    report_dir: Path
    state_dir: Path | None
    # Objects from --policy (a Canary, and optionally its VirtualService, DestinationRule and
    # MetricTemplates); None runs the built-in demo objects.
    policy_objects: Sequence[dict[str, Any]] | None = None
    stable_error_rate: float = 0.0
    # Hold at the promotion gate until `canary approve|reject` (spec.approvals).
    approval: bool = False
    # --slack: the Canary notifies a Slack channel, and approval clicks come back from it.
    slack: SlackSettings = field(default_factory=SlackSettings)
    # slow-traces: what v2 adds to that share of its POST /checkout requests.
    slow_ms: float = SLOW_MS
    slow_rate: float = SLOW_RATE


@dataclass(frozen=True, slots=True)
class Outcome:
    expected: scenario.Expected
    status: CanaryStatus
    seconds: float
    # Every process the mesh started, all stopped by now: the report lists them to check that.
    pids: tuple[int, ...] = ()

    @property
    def as_expected(self) -> bool:
        # subtle must be rolled back by the comparison, noisy promoted without it proving one.
        regression = self.expected.regression
        return (
            str(self.status.phase) == self.expected.phase
            and self.status.canary_weight == self.expected.canary_weight
            and (regression is None or verdicts.proven(self.status) is regression)
        )


def run(options: DemoOptions, console: Console) -> Outcome:
    def objects(jaeger: str) -> list[dict[str, Any]]:
        chosen = options.policy_objects or (
            ingress.objects()
            if options.scenario is scenario.Scenario.INGRESS
            else scenario.objects(options.scenario, approval=options.approval, jaeger=jaeger)
        )
        return slack.with_slack(scenario.complete(list(chosen)), options.slack)

    plan = scenario.plan(objects(scenario.LOCAL_JAEGER))
    traced = scenario.traced(objects(scenario.LOCAL_JAEGER))
    edge = ingress.uses_gateway(objects(scenario.LOCAL_JAEGER))
    with tempfile.TemporaryDirectory(prefix="canary-demo-") as scratch:
        state_dir = options.state_dir or Path(scratch) / "state"
        store = LocalStore(state_dir)
        with LocalMesh(
            service=plan.service,
            namespace=plan.key.namespace,
            versions=_versions(options, plan),
            workdir=Path(scratch) / "mesh",
            rate=options.rate,
            duration=options.timeout + 30,
            mix=_mix(options),
            traces=traced,
            **demo_mtls.mesh_options(objects(scenario.LOCAL_JAEGER)),
            gateway=ingress.gateway_spec(objects(scenario.LOCAL_JAEGER)) if edge else None,
        ) as mesh:
            console.print(mesh.describe())
            outsider = demo_mtls.caller_for(mesh, plan.canary_version)
            began = datetime.now(UTC)
            # The built-in trace template names the Jaeger that now runs; a policy's keeps its
            # own address, and the mesh's Jaeger answers for it (traces.MeshJaeger).
            seeded = objects(mesh.jaeger_url if traced else scenario.LOCAL_JAEGER)
            _seed(store, seeded)
            pids = mesh.pids()
            ledger = verdicts.Ledger.of(seeded)
            metrics = PrometheusMetrics(mesh.prometheus_url)
            span_source = JaegerTraces(mesh.jaeger_url) if traced else None
            spans = (
                traces.watch(
                    seeded,
                    namespace=plan.key.namespace,
                    versions={
                        plan.stable_version: plan.stable_subset,
                        plan.canary_version: plan.canary_subset,
                    },
                )
                if traced
                else None
            )
            chat = DemoChat(store, options.slack) if options.slack.on else None
            controller = local_controller(
                store,
                mesh,
                metrics,
                chat=None if chat is None else chat.publisher,
                callers=caller_proxies(mesh, seeded),
            )
            url = "" if chat is None else chat.interactions_url
            for line in slack.header(options.slack, url):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            try:
                if chat is not None:
                    chat.start()
                if outsider is not None:
                    outsider.start()
                waited = warmup.wait(controller.reconciler, plan.key)
                console.print(waited.line(), markup=False, highlight=False, soft_wrap=True)
                controller.start()
                samples = _watch(
                    store,
                    metrics,
                    plan,
                    options,
                    console,
                    state_dir=state_dir,
                    ledger=ledger,
                    spans=spans,
                    span_source=span_source,
                    gateway=mesh.gateway,
                )
            finally:
                controller.stop()
                if chat is not None:
                    chat.stop()
                if outsider is not None:
                    outsider.stop()
            handshakes = demo_mtls.stats_lines(mesh, outsider) if mesh.mtls else []
            # Before the mesh stops its Jaeger, which holds the spans in memory only.
            found = trace_summary.found_in_jaeger(
                store.status(plan.key),
                spans,
                span_source,
                version=plan.canary_version,
                since=began,
            )
            edge_url = "" if mesh.gateway is None else ingress.url(mesh.gateway)
        events = store.events()
        status = store.status(plan.key)
    outcome = Outcome(
        expected=scenario.expected(options.scenario, status),
        status=status,
        seconds=samples[-1].t if samples else 0.0,
        pids=tuple(pids),
    )
    _summarize(
        outcome,
        samples=samples,
        events=events,
        plan=plan,
        options=options,
        console=console,
        spans=spans,
        found=found,
        edge_url=edge_url,
        ledger=ledger,
    )
    if chat is not None:
        console.print(chat.summary(), markup=False, highlight=False)
    for line in handshakes:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    return outcome


def _versions(options: DemoOptions, plan: scenario.Plan) -> list[VersionSpec]:
    # v2 fails a share of its requests in bad, subtle and noisy (the last two v1's too).
    bad = options.scenario is scenario.Scenario.BAD or options.scenario.compares
    slow = options.scenario.traced
    return [
        VersionSpec(
            name=plan.stable_version,
            subset=plan.stable_subset,
            error_rate=options.stable_error_rate,
            latency_ms=options.stable_latency_ms,
        ),
        VersionSpec(
            name=plan.canary_version,
            subset=plan.canary_subset,
            error_rate=options.error_rate if bad else 0.0,
            latency_ms=options.canary_latency_ms,
            slow_path=scenario.SLOW_PATH if slow else "",
            slow_ms=options.slow_ms if slow else 0.0,
            slow_rate=options.slow_rate if slow else 0.0,
        ),
    ]


def _mix(options: DemoOptions) -> list[tuple[Request, int]]:
    """Browsing and some checkouts when a scenario judges operations; else `GET /` alone."""
    if not options.scenario.traced:
        return []
    return [
        (Request(method, path, scenario.CHECKOUT_BODY if method == "POST" else None), weight)
        for method, path, weight in scenario.TRACE_MIX
    ]


def _watch(
    store: LocalStore,
    metrics: PrometheusMetrics,
    plan: scenario.Plan,
    options: DemoOptions,
    console: Console,
    *,
    state_dir: Path,
    ledger: verdicts.Ledger,
    spans: traces.SpanWatch | None = None,
    span_source: JaegerTraces | None = None,
    gateway: LocalGateway | None = None,
) -> list[timeline.Sample]:
    """Sample once a second until the rollout ends or the time limit passes."""
    samples: list[timeline.Sample] = []
    started = time.monotonic()
    told = ""
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while (elapsed := time.monotonic() - started) < options.timeout:
            status = store.status(plan.key)
            if status.waiting_for and status.waiting_for != told:
                # Also printed above the live view, which a terminal that is not one (a
                # pipe, a CI log) shows only at the end.
                told = status.waiting_for
                how = _how_to_decide(plan, state_dir, options.slack)
                live.console.print(escape(f"waiting for {told}: {how}"), soft_wrap=True)
            latest = timeline.sample(
                elapsed,
                status,
                metrics,
                service=plan.service,
                namespace=plan.key.namespace,
                spans=spans,
                traces=span_source,
                versions=(
                    (plan.stable_version, plan.stable_subset),
                    (plan.canary_version, plan.canary_subset),
                ),
            )
            if gateway is not None:
                latest = dataclasses.replace(latest, gateway=ingress.stats(gateway))
            ledger.add(status, elapsed)
            latest = dataclasses.replace(latest, dry_run=ledger.dry_run(plan.canary_version))
            samples.append(latest)
            live.update(
                view.render(
                    latest,
                    scenario=str(options.scenario),
                    elapsed_limit=options.timeout,
                    decide=(
                        _how_to_decide(plan, state_dir, options.slack) if status.waiting_for else ""
                    ),
                )
            )
            if status.phase in TERMINAL_PHASES:
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started - elapsed)))
    return samples


def _how_to_decide(plan: scenario.Plan, state_dir: Path, chat: SlackSettings) -> str:
    where = f"{plan.key.name} -n {plan.key.namespace} --state-dir {state_dir}"
    how = f"decide in another terminal: canary approve {where}  (or: canary reject {where})"
    if chat.takes_clicks:
        how += f"; or click Approve or Reject on the rollout's message in Slack ({chat.channel})"
    return how


def _summarize(
    outcome: Outcome,
    *,
    samples: Sequence[timeline.Sample],
    events: Sequence[dict[str, Any]],
    plan: scenario.Plan,
    options: DemoOptions,
    console: Console,
    spans: traces.SpanWatch | None = None,
    found: dict[str, float | None] | None = None,
    edge_url: str = "",
    ledger: verdicts.Ledger | None = None,
) -> None:
    status = outcome.status
    verdict = "as expected" if outcome.as_expected else "NOT as expected"
    summary = {
        "title": f"canary demo ({options.scenario}): {status.phase} after {outcome.seconds:.0f}s",
        "scenario": str(options.scenario),
        "canary": str(plan.key),
        "phase": str(status.phase),
        "canary_weight": status.canary_weight,
        "stable_subset": status.stable_subset,
        "failed_checks": status.failed_checks,
        "seconds": outcome.seconds,
        "expected": {"phase": outcome.expected.phase, "weight": outcome.expected.canary_weight},
        "as_expected": outcome.as_expected,
        "message": status.message,
        "pids": list(outcome.pids),
        "status": status.model_dump(mode="json", by_alias=True),
    }
    # The gateway's counters as last read: the users' requests went through it.
    edge = next((s.gateway for s in reversed(samples) if s.gateway), None)
    if edge is not None:
        summary["gateway"] = {"url": edge_url, **edge}
    closing: dict[str, Any] | None = None
    if spans is not None:
        closing = summary["traces"] = trace_summary.summary(spans, samples, status, found)
    why = summary["why"] = (
        verdicts.closing(ledger, stable=plan.stable_version, canary=plan.canary_version)
        if ledger
        else []
    )
    data, picture = report.write(
        options.report_dir,
        summary=summary,
        samples=samples,
        events=events,
        span_threshold=None if spans is None else spans.threshold_max,
    )
    colour = "green" if outcome.as_expected else "red"
    console.print(
        f"[bold {colour}]{status.phase}[/] after {outcome.seconds:.0f}s, {verdict} for the "
        f"{options.scenario} scenario: {plan.canary_version} at {status.canary_weight}%, "
        f"stable subset {status.stable_subset}, {status.failed_checks} failed checks."
    )
    if status.message:
        console.print(f"  {escape(status.message)}")
    if edge is not None:
        for line in ingress.lines(edge, edge_url):
            console.print(f"  {escape(line)}")
    if closing is not None:
        for line in trace_summary.lines(closing):
            console.print(f"  {escape(line)}")
    for line in why:
        console.print(f"  {escape(line)}", soft_wrap=True)
    for event in events:
        # Messages quote Prometheus and users' names, which may hold rich markup's brackets.
        console.print(f"  [dim]{event['type']:7}[/] {event['reason']}: {escape(event['message'])}")
    console.print(f"report: {data}  picture: {picture}")


def _seed(store: LocalStore, objects: Sequence[dict[str, Any]]) -> None:
    """Put the objects in the store, except a VirtualService or DestinationRule it already has.

    Those hold the live weights of a rollout a previous run left in --state-dir: overwriting
    them with the file's copy would send all traffic back to stable behind the controller's
    back. Canaries and templates are put every time, so an edited spec takes effect (a new
    generation, and the rollout starts over).
    """
    for body in objects:
        meta = body.get("metadata") or {}
        kept = body.get("kind") in ("VirtualService", "DestinationRule") and store.get(
            body["kind"], meta.get("namespace") or scenario.NAMESPACE, meta["name"]
        )
        if not kept:
            store.put(body)
