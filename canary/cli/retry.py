"""`canary retry NAME`: start a failed rollout over."""

from __future__ import annotations

import click

from canary.cli import params
from canary.cli.connection import Connection, connected
from canary.cli.root import main


@main.command()
@click.argument("name")
@params.answer_timeout
@connected()
def retry(*, connection: Connection, name: str, timeout: params.Timeout) -> None:
    """Ask the controller to start NAME's failed rollout over from the first step (same
    revision).

    Exits 0 when the controller accepted, or when the rollout is not Failed (nothing to do,
    nothing written); 1 when it did not accept (or the Canary is missing or invalid); 2 when it
    did not answer within --timeout.
    """
    from canary.api.commands import Verb
    from canary.cli import ask

    ask.run(connection, name, Verb.RETRY, timeout=timeout)
