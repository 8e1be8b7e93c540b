"""`canary preflight NAME`: what the controller found before the rollout's first step, one line
per item (✓ ok, ✗ failed, ? unknown, - not checked), like `istioctl proxy-status` for a rollout.

It prints the controller's own record (the `Preflight` condition, engine/preflight.py) rather
than checking again from wherever the command runs: the controller is the one that must see the
pods, the proxies and Prometheus, and a laptop's view of them would prove nothing about its view.
So it reads the same from the API server and from a demo's state directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from canary.cli.connection import Connection, connected
from canary.cli.root import main

if TYPE_CHECKING:
    from canary.ports import StoredCanary

# The marks an item line starts with that do not hold a rollout (engine/preflight.MARKS).
_PASSING_MARKS = ("✓", "-")


@main.command()
@click.argument("name")
@connected()
def preflight(*, connection: Connection, name: str) -> None:
    """Whether NAME's rollout may take its first step: the sidecars on both subsets' pods, the
    callers' proxies serving the route, the series its metric checks need, the stats its chaos
    experiments read; each with what to fix.

    Exits 0 when every item passed, 1 when one failed, is unknown, or preflight has not run
    yet (or the Canary does not exist).
    """
    from canary.cli.connection import fail, reported

    with reported(connection):
        client, key = connection.client, connection.key(name)
        stored = client.stored(key)
        if stored is None:
            fail(f"Canary {key} not found ({client.where})", 1)
    lines, passed = report(stored)
    for line in lines:
        click.echo(line)
    if not passed:
        raise SystemExit(1)


def report(stored: StoredCanary) -> tuple[list[str], bool]:
    """The lines to print, and whether every item passed."""
    from canary.engine.preflight import PREFLIGHT

    status = stored.status
    condition = next((c for c in status.conditions if c.type == PREFLIGHT), None)
    header = f"Canary {stored.key}: revision {status.revision or '-'}, {status.phase or 'new'}"
    if condition is None:
        return [
            header,
            "? preflight: not checked yet (the controller checks before a rollout's first step)",
        ], False
    verdict = "passed" if condition.status == "True" else "failed"
    when = condition.last_transition_time.strftime("%Y-%m-%d %H:%M:%S UTC")
    items = [line for line in condition.message.splitlines() if line.strip()]
    passed = condition.status == "True" and all(line.startswith(_PASSING_MARKS) for line in items)
    return [f"{header}: preflight {verdict} (since {when})", *items], passed
