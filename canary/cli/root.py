"""The `canary` command: the one entry point for users, CI pipelines and the controller."""

from __future__ import annotations

import sys
from pathlib import Path

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
