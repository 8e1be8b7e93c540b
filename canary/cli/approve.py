"""`canary approve NAME` and `canary reject NAME`: decide the approval gate that waits, for
people who are not in the chat, held to RBAC like the other verbs (they patch the Canary)."""

from __future__ import annotations

import click

from canary.cli import params
from canary.cli.connection import Connection, connected
from canary.cli.root import main


@main.command()
@click.argument("name")
@params.answer_timeout
@connected()
def approve(*, connection: Connection, name: str, timeout: params.Timeout) -> None:
    """Approve the gate NAME's rollout waits at (spec.approvals): it goes on at the next tick.

    Exits 0 when the controller accepted; 1 when nothing waits for approval, it did not accept,
    or the Canary is missing or invalid; 2 when it did not answer within --timeout.
    """
    from canary.api.commands import Verb
    from canary.cli import ask

    ask.run(connection, name, Verb.APPROVE, timeout=timeout)


@main.command()
@click.argument("name")
@params.answer_timeout
@connected()
def reject(*, connection: Connection, name: str, timeout: params.Timeout) -> None:
    """Reject the gate NAME's rollout waits at (spec.approvals): it rolls back at once.

    Exits as `canary approve` does.
    """
    from canary.api.commands import Verb
    from canary.cli import ask

    ask.run(connection, name, Verb.REJECT, timeout=timeout)
