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
    Folders are read recursively (*.yaml, *.yml). A file over 3 MiB (the API server refuses
    larger requests), a FIFO or a device is refused by name, unread; so is a document nested
    deeper than 100 levels or whose aliases expand beyond 1,000,000 values. Objects in a
    `kind: List` are checked one by one; Flagger's and Argo Rollouts' objects are not checked
    but named with what to translate them to (a problem, too).
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
