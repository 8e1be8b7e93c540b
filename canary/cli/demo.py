"""`canary demo`: a real rollout on the embedded data plane, watched live."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from canary.cli.root import main


@main.command()
@click.option(
    "--scenario",
    type=click.Choice(
        [
            "good",
            "bad",
            "chaos",
            "chaos-unprotected",
            "slow-traces",
            "slow-traces-metrics",
            "mtls-strict",
            "ingress",
            "subtle",
            "noisy",
        ]
    ),
    default="good",
    show_default=True,
    help="good: a healthy v2, promoted. bad: v2 answers 5xx at --error-rate, rolled back. "
    "chaos: a healthy v2 with a fault experiment at 25%; outlier detection ejects the faulty "
    "hosts, so it is promoted. chaos-unprotected: the same without outlier detection in the "
    "DestinationRule; the experiment fails and v2 is rolled back. slow-traces: users browse "
    "and check out; v2 makes --slow-rate of its checkouts --slow-ms slower, the p99 over all "
    "requests passes, a trace SLO on POST /checkout's spans in a local Jaeger fails, and v2 is "
    "rolled back (needs Jaeger: tests/jaeger/build). slow-traces-metrics: the same, judged by "
    "the built-in trace-duration from span metrics in Prometheus instead of Jaeger's API. "
    "mtls-strict: the good rollout in a STRICT namespace with ISTIO_MUTUAL, while a plaintext "
    "caller outside the mesh is refused by a v2 sidecar; Envoy's handshake counters close it. "
    "ingress: a healthy v2 rolled out at the edge: users call https://shop.example.test "
    "through the mesh's ingress gateway (Gateway + VirtualService), promoted. "
    "subtle: v1 fails 1% of requests and v2 3%, both above the check's min: 95 line; the "
    "success-rate check compares v2 with v1 (a sequential test at alpha 0.01), proves v2 worse "
    "and rolls it back. noisy: v1 and v2 both fail 2%; the comparison finds v2 no worse and "
    "it is promoted, while a min: 99 line judged beside it as a dry run (mode: observe) says "
    "when it would have rolled back a healthy v2. Both run at 200 requests a second.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0.0, 1.0),
    help="The share of v2's answers that are 503 in the bad, subtle and noisy scenarios "
    "(default: 0.2 in bad, 0.03 in subtle, 0.02 in noisy).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(0.0),
    default=5.0,
    show_default=True,
    help="How long each version takes to answer (see --stable-latency-ms, --canary-latency-ms).",
)
@click.option(
    "--stable-latency-ms",
    type=click.FloatRange(0.0),
    help="How long the stable version (v1) takes to answer; default: --latency-ms.",
)
@click.option(
    "--canary-latency-ms",
    type=click.FloatRange(0.0),
    help="How long the canary version (v2) takes to answer; default: --latency-ms.",
)
@click.option(
    "--stable-error-rate",
    type=click.FloatRange(0.0, 1.0),
    help="The share of the stable version's answers that are 503, in every scenario "
    "(default: 0, but 0.01 in subtle and 0.02 in noisy).",
)
@click.option(
    "--slow-ms",
    type=click.FloatRange(0.0),
    default=200.0,
    show_default=True,
    help="slow-traces: what v2 adds to a slow POST /checkout, in ms.",
)
@click.option(
    "--slow-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.1,
    show_default=True,
    help="slow-traces: the share of v2's POST /checkout requests that are slow.",
)
@click.option(
    "--rate",
    type=click.FloatRange(1.0, 500.0),
    help="Requests per second from the load generator (default: 40, but 200 in subtle and "
    "noisy, so the comparison sees enough requests within about two minutes).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(10.0),
    default=180.0,
    show_default=True,
    help="Seconds before the demo gives up waiting for the rollout to end.",
)
@click.option(
    "--policy",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run this Canary (with its VirtualService, DestinationRule and MetricTemplates, "
    "if the file has them) instead of the built-in one.",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("canary-demo-report"),
    show_default=True,
    help="Where report.json and report.svg are written.",
)
@click.option(
    "--approval",
    is_flag=True,
    help="Hold at the promotion gate (spec.approvals) until `canary approve demo` or "
    "`canary reject demo` (the live view shows the command), or a click in Slack with "
    "--slack; give --timeout room for it.",
)
@click.option(
    "--slack",
    "slack_channel",
    metavar="CHANNEL",
    help="Tell a Slack channel (an ID or #name): one message per rollout, updated as it goes, "
    "with Approve/Reject buttons at an --approval gate. Needs SLACK_BOT_TOKEN in the "
    "environment; SLACK_SIGNING_SECRET serves the interactions URL for clicks, SLACK_APP_TOKEN "
    "takes them over Socket Mode, SLACK_API_URL points at another Web API.",
)
@click.option(
    "--approver",
    "approvers",
    multiple=True,
    metavar="USER_ID",
    help="A Slack user ID (U…) who may click Approve or Reject; repeatable, added to "
    "CANARY_DEMO_APPROVERS (comma-separated). Without any, every click is refused.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the store here (default: a temporary folder) so another canary can read it.",
)
def demo(
    *,
    scenario: str,
    error_rate: float | None,
    latency_ms: float,
    stable_latency_ms: float | None,
    canary_latency_ms: float | None,
    stable_error_rate: float | None,
    slow_ms: float,
    slow_rate: float,
    rate: float | None,
    timeout: float,
    policy: Path | None,
    report_dir: Path,
    state_dir: Path | None,
    approval: bool,
    slack_channel: str | None,
    approvers: tuple[str, ...],
) -> None:
    """Run a real canary rollout on a local Envoy mesh with Prometheus, and watch it.

    Exits 0 when the rollout ends as the scenario should (good, chaos, ingress and noisy:
    Succeeded at 100% v2, noisy without a proven regression; bad, chaos-unprotected,
    slow-traces and subtle: Failed at 100% v1, subtle by a proven regression), 1 otherwise, 2
    when something the demo needs is missing (Envoy, Prometheus, or for slow-traces Jaeger).
    """
    from rich.console import Console
    from rich.markup import escape

    from canary.controller import logs
    from canary.demo import comparing, run, slack
    from canary.demo import scenario as scenarios
    from canary.errors import CanaryError
    from canary.localmesh.envoy import EnvoyNotFound
    from canary.localmesh.jaeger import JaegerNotFound
    from canary.localmesh.prometheus import PrometheusNotFound

    console = Console()
    try:
        slack_settings = slack.settings(
            channel=slack_channel, approval=approval, approvers=approvers, environ=os.environ
        )
    except slack.SetupError as exc:
        console.print(f"[bold red]cannot run the demo:[/] {escape(str(exc))}")
        sys.exit(2)
    objects = _policy_objects(policy) if policy else None
    report_dir.mkdir(parents=True, exist_ok=True)
    log_path = report_dir / "controller.log"
    # The live view owns the terminal; the controller's own log goes to a file beside the report.
    log_file = log_path.open("w", encoding="utf-8")
    logs.configure(json=False, level="info", stream=log_file)
    # A scenario that compares with stable brings its own world: both versions fail a little,
    # and the load is raised so the comparison sees enough requests (demo/comparing.py).
    world = comparing.WORLDS.get(scenario)
    if error_rate is None:
        error_rate = world.canary_error_rate if world else 0.2
    if stable_error_rate is None:
        stable_error_rate = world.stable_error_rate if world else 0.0
    if rate is None:
        rate = comparing.RATE if world else 40.0
    options = run.DemoOptions(
        scenario=scenarios.Scenario(scenario),
        error_rate=error_rate,
        stable_error_rate=stable_error_rate,
        stable_latency_ms=latency_ms if stable_latency_ms is None else stable_latency_ms,
        canary_latency_ms=latency_ms if canary_latency_ms is None else canary_latency_ms,
        rate=rate,
        timeout=timeout,
        report_dir=report_dir,
        state_dir=state_dir,
        policy_objects=objects,
        approval=approval,
        slack=slack_settings,
        slow_ms=slow_ms,
        slow_rate=slow_rate,
    )
    try:
        outcome = run.run(options, console)
    except (EnvoyNotFound, PrometheusNotFound) as exc:
        console.print(f"[bold red]cannot run the demo:[/] {exc}")
        sys.exit(2)
    except JaegerNotFound as exc:
        # The runner's message names tests/jaeger/build and CANARY_JAEGER.
        console.print(f"[bold red]cannot run the demo:[/] {escape(str(exc))}")
        sys.exit(2)
    except CanaryError as exc:
        console.print(f"[bold red]the demo failed:[/] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: every process the demo started was stopped[/]")
        sys.exit(130)
    finally:
        log_file.close()
    console.print(f"controller log: {log_path}")
    sys.exit(0 if outcome.as_expected else 1)


def _policy_objects(policy: Path) -> list[dict[str, Any]]:
    """The policy's objects, once `canary validate` would accept them; else exit 1 with why."""
    from canary.validation import report

    findings = report.validate_paths([policy])
    if findings.failed:
        for line in findings.lines():
            click.echo(line, err=True)
        sys.exit(1)
    inventory = findings.loaded.inventory
    return [
        *(placed.obj.to_wire() for placed in inventory.canaries),
        *(placed.obj.to_wire() for placed in inventory.templates),
        *(placed.obj for placed in inventory.virtual_services),
        *(placed.obj for placed in inventory.destination_rules),
        *(placed.obj for placed in inventory.peer_authentications),
    ]
