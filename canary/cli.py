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
def crds() -> None:
    """Print the CustomResourceDefinitions generated from the models (what deploy/crds holds)."""
    from canary.api import crd

    click.echo(crd.render_yaml(), nl=False)
