"""`canary status [NAME]`: where each rollout is, for a person (text) or a script (json, yaml)."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import click

from canary.cli.connection import Connection, connected, fail, reported
from canary.cli.root import main

if TYPE_CHECKING:
    from canary.ports import StoredCanary


@main.command()
@click.argument("name", required=False)
@click.option("--all-namespaces", "-A", is_flag=True, help="Every namespace (without NAME only).")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
    help="json and yaml: the status as stored (camelCase) with name, namespace, generation.",
)
@connected()
def status(*, connection: Connection, name: str | None, all_namespaces: bool, output: str) -> None:
    """Every Canary of the namespace, or the one NAME: phase, weight, step, what it waits on,
    the latest verdicts and the last command.

    Exits 0, or 1 when NAME does not exist.
    """
    from canary.cluster.client import stored_of

    if name is not None and all_namespaces:
        raise click.UsageError("give NAME or --all-namespaces, not both")
    with reported(connection):
        client = connection.client
        if name is not None:
            key = connection.key(name)
            body = client.get(key)
            if body is None:
                fail(f"Canary {key} not found ({client.where})", 1)
            bodies = [body]
        else:
            bodies = client.canaries(None if all_namespaces else connection.namespace)
    if output != "text":
        documents = [_document(body) for body in bodies]
        shown: Any = documents[0] if name is not None else documents
        if output == "json":
            click.echo(json.dumps(shown, indent=2))
        else:
            import yaml

            click.echo(yaml.safe_dump(shown, sort_keys=False), nl=False)
        return
    if name is not None:
        from canary.cli import describe

        stored = stored_of(bodies[0])
        with reported(connection):
            expected = describe.expected_revision(client, stored)
        for line in _detail(stored, expected):
            click.echo(line)
        return
    if not bodies:
        where = "any namespace" if all_namespaces else f"namespace {connection.namespace}"
        click.echo(f"no Canaries in {where} ({client.where})")
        return
    _table(bodies, namespaces=all_namespaces)


def _document(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "generation": meta.get("generation"),
        **(body.get("status") or {}),
    }


def _table(bodies: list[dict[str, Any]], *, namespaces: bool) -> None:
    from canary.cli import describe
    from canary.cluster.client import stored_of

    header = ["NAME", "PHASE", "WEIGHT", "STEP", "CHECKS", "LAST COMMAND", "WAITING FOR / MESSAGE"]
    if namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for body in bodies:
        stored = stored_of(body)
        status = stored.status
        verdicts = Counter(str(check.verdict) for check in status.checks)
        last = status.last_command
        row = [
            stored.key.name,
            describe.shown_phase(stored) + (" (paused)" if _paused(stored) else ""),
            f"{status.canary_weight}%",
            describe.step(stored),
            ", ".join(f"{count} {verdict}" for verdict, count in sorted(verdicts.items())) or "-",
            "-" if last is None else f"{last.verb} {'ok' if last.accepted else 'refused'}",
            describe.waiting(status)
            or ("; ".join(stored.problems) if stored.problems else "")
            or stored.status_error,
        ]
        if namespaces:
            row.insert(0, stored.key.namespace)
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


def _paused(stored: StoredCanary) -> bool:
    return stored.spec is not None and stored.spec.suspend


def _generations(stored: StoredCanary) -> str:
    """The Canary's generation and the one the controller acted on, said plainly when behind."""
    generation, observed = stored.generation, stored.status.observed_generation
    if observed == 0:
        # No status yet, or a controller that does not record it.
        return f"generation {generation}"
    if generation <= observed:
        return f"generation {generation}, seen by the controller"
    return f"generation {generation}, not seen by the controller yet: it acted on {observed}"


def _detail(stored: StoredCanary, expected: str) -> list[str]:
    from canary.cli import describe

    status = stored.status
    lines = [f"Canary {stored.key}: {describe.shown_phase(stored)}"]
    if stored.status_error:
        lines.append(f"  unreadable:   {stored.status_error} (canary retry starts it over)")
    if stored.spec is None:
        lines.append(f"  invalid:      the spec does not parse: {describe.problems(stored)}")
        return lines
    spec = stored.spec
    weights = ", ".join(f"{weight}%" for weight in spec.analysis.weights)
    stable = status.stable_subset or spec.stable.subset
    lines += [
        f"  traffic:      weight {status.canary_weight}% to {describe.subset(stored)}, "
        f"stable {stable}",
        f"  step:         {describe.step(stored)} (steps at {weights})",
    ]
    if status.waiting_for:
        lines.append(f"  waiting for:  {describe.gate(status)} to say yes")
    if status.message and not (status.waiting_for and status.waiting_for in status.message):
        lines.append(f"  message:      {status.message}")
    if spec.suspend:
        since = f" since {describe.clock(status.suspended_at)}" if status.suspended_at else ""
        lines.append(f"  paused:       yes{since} (canary resume {stored.key.name})")
    if status.promote_requested:
        lines.append(f"  promotion:    {describe.promotion(status).removeprefix('promotion ')}")
    lines.append(f"  revision:     {status.revision or '-'} ({_generations(stored)})")
    if describe.template(stored):
        lines.append(f"  template:     {describe.template(stored)}")
    if describe.retired(stored):
        lines.append(f"  retired:      {describe.retired(stored)}")
    if expected and expected != status.revision:
        # The spec or the target's pod template changed since: what is above is the earlier
        # release's, and a pipeline reading it should know.
        lines.append(
            f"  pending:      revision {expected} of {spec.canary.subset}: the controller starts "
            "it at its next tick"
        )
    lines.append(
        f"  failed checks: {status.failed_checks} (rolls back at {spec.analysis.threshold})"
    )
    if status.checks:
        lines.append("  latest checks:")
        lines += [f"    {describe.check(check)}" for check in status.checks]
    lines.append(f"  last command: {describe.command(status.last_command)}")
    return lines
