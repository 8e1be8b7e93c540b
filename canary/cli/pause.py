"""`canary pause NAME` and `canary resume NAME`: the spec's own switch, `spec.suspend`.

A paused rollout keeps its weights and its clocks stop (the controller sets the Suspended
condition and, on resuming, shifts every stored clock by the time spent paused). Both are a
merge patch of that one field, so nothing else in the spec changes; `suspend` is left out of
the revision, so pausing never starts a rollout over.
"""

from __future__ import annotations

import sys

import click

from canary.cli.connection import Connection, connected
from canary.cli.root import main


@main.command()
@click.argument("name")
@connected()
def pause(*, connection: Connection, name: str) -> None:
    """Freeze NAME's rollout where it is: no weight change, no check, clocks stopped.

    Exits 0 (also when it is already paused), 1 when the Canary is missing or you may not.
    """
    _switch(connection, name, suspend=True)


@main.command()
@click.argument("name")
@connected()
def resume(*, connection: Connection, name: str) -> None:
    """Let NAME's paused rollout carry on from where it was paused.

    Exits 0 (also when it is not paused), 1 when the Canary is missing or you may not.
    """
    _switch(connection, name, suspend=False)


def _switch(connection: Connection, name: str, *, suspend: bool) -> None:
    from canary.cli import describe
    from canary.cli.connection import fail, reported

    with reported(connection):
        client, key = connection.client, connection.key(name)
        stored = client.stored(key)
        if stored is None:
            fail(f"Canary {key} not found ({client.where})", 1)
        if stored.spec is None:
            fail(f"Canary {key} is invalid: {describe.problems(stored)}", 1)
        if stored.spec.suspend == suspend:
            click.echo(f"nothing to do: {key} is already {'paused' if suspend else 'running'}")
            sys.exit(0)
        client.patch(key, {"spec": {"suspend": suspend}})
    if suspend:
        click.echo(
            f"paused {key}: the controller freezes the rollout at its next tick (weights stay "
            f"at {stored.status.canary_weight}%); canary resume {name} lets it carry on"
        )
    else:
        click.echo(f"resumed {key}: the rollout carries on from where it was paused")
