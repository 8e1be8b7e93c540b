"""`canary promote NAME`: skip the remaining steps of the rollout in progress."""

from __future__ import annotations

import click

from canary.cli import params
from canary.cli.connection import Connection, connected
from canary.cli.root import main


@main.command()
@click.argument("name")
@click.option(
    "--force",
    is_flag=True,
    help="Promote at once, without waiting for the current step's checks to pass.",
)
@params.answer_timeout
@connected()
def promote(*, connection: Connection, name: str, force: bool, timeout: params.Timeout) -> None:
    """Ask the controller to promote NAME now, skipping the remaining steps.

    Without --force, once the latest result of each of the current step's enforced checks is a
    pass; with it, at once. Exits 0 when the controller accepted, 1 when it did not (or the
    Canary is missing or invalid), 2 when it did not answer within --timeout. A rollout that
    already ended is "nothing to do", exit 0, and nothing is written.
    """
    from canary.api.commands import Verb
    from canary.cli import ask

    ask.run(connection, name, Verb.PROMOTE, timeout=timeout, force=force)
