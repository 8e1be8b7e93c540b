"""`canary run`: the controller against a Kubernetes API server."""

from __future__ import annotations

import sys

import click

from canary.cli.root import main


@main.command()
@click.option("--kubeconfig", help="Use this kubeconfig; without it, in-cluster credentials.")
@click.option("--context", help="The kubeconfig context to use.")
@click.option(
    "--prometheus-url",
    default="http://prometheus.istio-system:9090",
    show_default=True,
    help="Where the built-in checks and the chaos verdicts are queried (a template names its own).",
)
@click.option(
    "--prometheus-ca-file",
    type=click.Path(dir_okay=False),
    help="PEM bundle of the CAs that sign --prometheus-url's certificate (a private CA); "
    "default: the system's trust store.",
)
@click.option(
    "--prometheus-bearer-token-file",
    type=click.Path(dir_okay=False),
    help="A file whose content is sent as Authorization: Bearer to --prometheus-url; read at "
    "start and again whenever it changes (a projected ServiceAccount token rotates).",
)
@click.option(
    "--prometheus-insecure-skip-verify",
    is_flag=True,
    help="Accept any certificate from --prometheus-url. Its answers promote releases: prefer "
    "--prometheus-ca-file.",
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
@click.option(
    "--preflight/--no-preflight",
    default=True,
    show_default=True,
    help="Check sidecars, the callers' proxies, metric series and chaos stats before a "
    "rollout's first step, holding it until they pass (see `canary preflight`).",
)
@click.option("--log-format", type=click.Choice(["json", "console"]), default="json")
@click.option("--log-level", default="info", show_default=True)
def run(
    *,
    kubeconfig: str | None,
    context: str | None,
    prometheus_url: str,
    prometheus_ca_file: str | None,
    prometheus_bearer_token_file: str | None,
    prometheus_insecure_skip_verify: bool,
    query_set: str,
    metrics_address: str,
    lease_namespace: str,
    lease_name: str,
    lease_seconds: float,
    identity: str,
    no_leader_election: bool,
    envoy_admin: tuple[str, ...],
    preflight: bool,
    log_format: str,
    log_level: str,
) -> None:
    """Run the controller against a Kubernetes API server until SIGTERM."""
    import signal

    from canary.api import builtins
    from canary.cluster.run import ClusterController, RunOptions, prometheus_problems
    from canary.controller import logs

    logs.configure(json=log_format == "json", level=log_level)
    from canary.controller.serve import parse_address

    try:
        host, port = parse_address(metrics_address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics-address") from exc
    options = RunOptions(
        prometheus_url=prometheus_url,
        prometheus_ca_file=prometheus_ca_file,
        prometheus_bearer_token_file=prometheus_bearer_token_file,
        prometheus_insecure_skip_verify=prometheus_insecure_skip_verify,
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
        preflight=preflight,
    )
    problems = prometheus_problems(options)
    if problems:
        raise click.UsageError("; ".join(problems))
    controller = ClusterController(options)

    def _terminate(signum: int, _frame: object) -> None:
        controller.stopping.set()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    controller.start()
    controller.wait()
    controller.stop()
    sys.exit(1 if controller.lost else 0)
