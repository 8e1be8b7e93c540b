"""`canary abort NAME`: roll the rollout in progress back now."""

from __future__ import annotations

import click

from canary.cli import params
from canary.cli.connection import Connection, connected
from canary.cli.root import main


@main.command()
@click.argument("name")
@params.answer_timeout
@connected()
def abort(*, connection: Connection, name: str, timeout: params.Timeout) -> None:
    """Ask the controller to roll NAME back now (RollingBack, then Failed).

    A paused Canary is resumed in the same write, so the rollback can move the weights. Exits
    0 when the controller accepted, 1 when it did not (or the Canary is missing or invalid), 2
    when it did not answer within --timeout. A rollout that already ended is "nothing to do",
    exit 0, and nothing is written.
    """
    from canary.api.commands import Verb
    from canary.cli import ask

    ask.run(connection, name, Verb.ABORT, timeout=timeout)
