"""The `canary` command: the one entry point for users, CI pipelines and the controller."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from canary import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="canary")
def main() -> None:
    """Progressive delivery for Kubernetes and Istio."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check Canary, MetricTemplate, VirtualService and DestinationRule files together.

    Prints one line per problem, `file:document: field: message`, and exits 1 if there is any.
    """
    from canary.validation import report

    findings = report.validate_paths(paths)
    for line in findings.lines():
        click.echo(line)
    click.echo(findings.summary(), err=True)
    sys.exit(1 if findings.failed else 0)


@main.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per CRD here (as deploy/crds holds them) instead of printing.",
)
def crds(output_dir: Path | None) -> None:
    """Print the CustomResourceDefinitions generated from the models (what deploy/crds holds)."""
    from canary.api import crd

    if output_dir is None:
        click.echo(crd.render_yaml(), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in crd.render_files().items():
        (output_dir / name).write_text(text, encoding="utf-8")
        click.echo(output_dir / name, err=True)


@main.command()
@click.option(
    "--scenario",
    type=click.Choice(["good", "bad", "chaos", "chaos-unprotected"]),
    default="good",
    show_default=True,
    help="good: a healthy v2, promoted. bad: v2 answers 5xx at --error-rate, rolled back. "
    "chaos: a healthy v2 with a fault experiment at 25%; outlier detection ejects the faulty "
    "hosts, so it is promoted. chaos-unprotected: the same without outlier detection in the "
    "DestinationRule; the experiment fails and v2 is rolled back.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.2,
    show_default=True,
    help="The share of v2's answers that are 503 in the bad scenario.",
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
    default=0.0,
    show_default=True,
    help="The share of the stable version's answers that are 503, in every scenario.",
)
@click.option(
    "--rate",
    type=click.FloatRange(1.0, 500.0),
    default=40.0,
    show_default=True,
    help="Requests per second from the load generator.",
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
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the store here (default: a temporary folder) so another canary can read it.",
)
def demo(
    *,
    scenario: str,
    error_rate: float,
    latency_ms: float,
    stable_latency_ms: float | None,
    canary_latency_ms: float | None,
    stable_error_rate: float,
    rate: float,
    timeout: float,
    policy: Path | None,
    report_dir: Path,
    state_dir: Path | None,
) -> None:
    """Run a real canary rollout on a local Envoy mesh with Prometheus, and watch it.

    Exits 0 when the rollout ends as the scenario should (good and chaos: Succeeded at 100% v2;
    bad and chaos-unprotected: Failed at 100% v1), 1 otherwise, 2 when something the demo needs
    is missing.
    """
    from rich.console import Console

    from canary.controller import logs
    from canary.demo import run
    from canary.demo import scenario as scenarios
    from canary.errors import CanaryError
    from canary.localmesh.envoy import EnvoyNotFound
    from canary.localmesh.prometheus import PrometheusNotFound

    console = Console()
    objects = _policy_objects(policy) if policy else None
    report_dir.mkdir(parents=True, exist_ok=True)
    log_path = report_dir / "controller.log"
    # The live view owns the terminal; the controller's own log goes to a file beside the report.
    log_file = log_path.open("w", encoding="utf-8")
    logs.configure(json=False, level="info", stream=log_file)
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
    )
    try:
        outcome = run.run(options, console)
    except (EnvoyNotFound, PrometheusNotFound) as exc:
        console.print(f"[bold red]cannot run the demo:[/] {exc}")
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
    ]


@main.command()
@click.argument("name")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option(
    "--state-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The local store a `canary demo --state-dir` (or another canary) writes.",
)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text")
def status(name: str, namespace: str, state_dir: Path, output: str) -> None:
    """Print a Canary's status as another canary process wrote it (exit 1 if there is none)."""
    from canary.localmesh.store import LocalStore
    from canary.ports import CanaryKey

    store = LocalStore(state_dir)
    key = CanaryKey(namespace, name)
    if store.get("Canary", namespace, name) is None:
        click.echo(f"Canary {key} not found in {state_dir}", err=True)
        sys.exit(1)
    current = store.status(key)
    if output == "json":
        click.echo(current.model_dump_json(by_alias=True, exclude_none=True, indent=1))
        return
    click.echo(f"Canary {key}: {current.phase or 'not started'}")
    click.echo(
        f"  weight {current.canary_weight}% to {current.canary_subset or '-'}, stable "
        f"{current.stable_subset or '-'}, step {current.step + 1}, "
        f"failed checks {current.failed_checks}"
    )
    if current.message:
        click.echo(f"  {current.message}")
    for condition in current.conditions:
        click.echo(f"  condition {condition.type}={condition.status} ({condition.reason})")
    for check in current.checks:
        value = "-" if check.value is None else f"{check.value:g}"
        click.echo(f"  check {check.name}: {check.verdict} {value} {check.message}".rstrip())


@main.command()
@click.option("--kubeconfig", help="Use this kubeconfig; without it, in-cluster credentials.")
@click.option("--context", help="The kubeconfig context to use.")
@click.option(
    "--prometheus-url",
    default="http://prometheus.istio-system:9090",
    show_default=True,
    help="Where the built-in checks (and templates without an address) are queried.",
)
@click.option(
    "--query-set",
    type=click.Choice(["istio", "envoy"]),
    default="istio",
    show_default=True,
    help="Istio's standard metrics, or plain Envoy cluster stats, for the built-in checks.",
)
@click.option(
    "--metrics-address",
    default="0.0.0.0:8080",
    show_default=True,
    help="host:port of /metrics, /healthz and /readyz (port 0: any free port).",
)
@click.option("--lease-namespace", default="canary-system", show_default=True)
@click.option("--lease-name", default="canary-controller", show_default=True)
@click.option("--lease-seconds", type=float, default=15.0, show_default=True)
@click.option(
    "--identity", default="", help="This replica's name in the Lease (default: POD_NAME)."
)
@click.option("--no-leader-election", is_flag=True, help="Act without a Lease (one replica only).")
@click.option(
    "--envoy-admin",
    multiple=True,
    help="An Envoy admin URL whose config_dump must show a split before its step's clock "
    "starts (repeatable).",
)
@click.option("--log-format", type=click.Choice(["json", "console"]), default="json")
@click.option("--log-level", default="info", show_default=True)
def run(
    *,
    kubeconfig: str | None,
    context: str | None,
    prometheus_url: str,
    query_set: str,
    metrics_address: str,
    lease_namespace: str,
    lease_name: str,
    lease_seconds: float,
    identity: str,
    no_leader_election: bool,
    envoy_admin: tuple[str, ...],
    log_format: str,
    log_level: str,
) -> None:
    """Run the controller against a Kubernetes API server until SIGTERM."""
    import signal

    from canary.api import builtins
    from canary.cluster.run import ClusterController, RunOptions
    from canary.controller import logs

    logs.configure(json=log_format == "json", level=log_level)
    from canary.controller.serve import parse_address

    try:
        host, port = parse_address(metrics_address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics-address") from exc
    options = RunOptions(
        prometheus_url=prometheus_url,
        kubeconfig=kubeconfig,
        context=context,
        query_set=builtins.QuerySet(query_set),
        metrics_host=host,
        metrics_port=port,
        leader_election=not no_leader_election,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        lease_seconds=lease_seconds,
        identity=identity,
        envoy_admin=envoy_admin,
    )
    controller = ClusterController(options)

    def _terminate(signum: int, _frame: object) -> None:
        controller.stopping.set()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    controller.start()
    controller.wait()
    controller.stop()
    sys.exit(1 if controller.lost else 0)
