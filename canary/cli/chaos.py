"""`canary chaos`: a one-off fault experiment on a running canary."""

from __future__ import annotations

import sys

import click

from canary.cli.connection import Connection, connected
from canary.cli.root import main


@main.command()
@click.argument("name")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    required=True,
    help="abort:<http status>:<percent> (e.g. abort:503:50) and/or delay:<duration>:<percent> "
    "(e.g. delay:2s:10); repeat for both.",
)
@click.option("--duration", required=True, help="How long the fault stays, at most a step.")
@click.option("--expect-ejection/--no-expect-ejection", default=True, show_default=True)
@click.option(
    "--min-success-rate", type=click.FloatRange(0, 100), help="The callers' lowest success rate."
)
@click.option("--expect-overflow", is_flag=True, help="The circuit breaker must shed load.")
@click.option("--on-failure", type=click.Choice(["continue", "rollback"]), default="continue")
@click.option("--experiment", help="The experiment's name (default: oneoff-<random>).")
@click.option("--timeout", type=click.FloatRange(1), default=300.0, show_default=True)
@connected()
def chaos(
    *,
    connection: Connection,
    name: str,
    faults: tuple[str, ...],
    duration: str,
    expect_ejection: bool,
    min_success_rate: float | None,
    expect_overflow: bool,
    on_failure: str,
    experiment: str | None,
    timeout: float,
) -> None:
    """Run a one-off fault experiment against a running canary and print the verdict.

    The controller runs it at the current step (the command only asks and waits), with the
    same safety as a declared experiment. Exits 0 when it passed, 1 when it failed, 2 when it
    could not run.
    """
    from canary.cluster import oneoff
    from canary.errors import CanaryError

    try:
        fault = oneoff.parse_fault(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from exc
    key = connection.key(name)
    target = oneoff.Target(connection.client, key)
    fields = {
        "name": experiment,
        "duration": duration,
        "fault": fault.model_dump(by_alias=True, exclude_none=True),
        "expect": {
            "ejection": expect_ejection,
            "successRate": min_success_rate,
            "overflow": expect_overflow,
        },
        "onFailure": on_failure,
    }
    try:
        result = oneoff.run(
            target, fields, timeout=timeout, progress=lambda line: click.echo(f"  {line}")
        )
    except (oneoff.Refused, CanaryError) as exc:
        click.echo(f"canary chaos {key}: {exc}", err=True)
        sys.exit(2)
    click.echo(f"{result.name} {result.phase.value.lower()}: {result.message}")
    click.echo(f"  injected {result.fault} on {result.subset} at weight {result.weight}%")
    click.echo(f"  expected {result.expect}")
    sys.exit(0 if result.phase.value == "Passed" else 1)
