"""What `canary promote|abort|retry|approve|reject` share: ask the controller, wait for its answer.

The controller is the only writer of a Canary's status, so a command is a request in the
`canary.dev/command` annotation (api/commands.py). The controller carries out a request whose id
differs from `status.lastCommand.id` at its next tick and records what came of it there; the
command waits for that record, prints the controller's message and removes the request, also
when it gave up or was interrupted (a request left behind would be carried out later, by
surprise).

Before writing anything the command reads the Canary and says plainly when there is nothing to
do, so a pipeline that runs `canary abort` twice, or on a rollout that already ended, gets a
clear exit 0 and no write.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from canary.api.commands import COMMAND_ANNOTATION, Command, CommandResult, Verb
from canary.api.status import Phase
from canary.cli import describe
from canary.cli.connection import Connection
from canary.cli.describe import Outcome
from canary.cli.params import Timeout
from canary.cluster.client import Client, NotFound
from canary.engine import approvals
from canary.errors import CanaryError
from canary.ports import CanaryKey, StoredCanary

POLL_SECONDS = 0.5


def preflight(
    verb: Verb, key: CanaryKey, stored: StoredCanary | None, expected: str, *, where: str = ""
) -> Outcome | None:
    """The answer when there is nothing to ask the controller; None when there is."""
    if stored is None:
        return Outcome(1, f"Canary {key} not found" + (f" ({where})" if where else ""), err=True)
    if stored.status_error and verb is not Verb.RETRY:
        return Outcome(
            1,
            f"the status of {key} cannot be read ({stored.status_error}): fix it, or "
            f"canary retry {key.name} starts the rollout over from the first step",
            err=True,
        )
    if stored.spec is None or stored.status.phase is Phase.INVALID:
        return Outcome(1, f"Canary {key} is invalid: {describe.problems(stored)}", err=True)
    if stored.spec.suspend and verb is not Verb.ABORT:
        # Nothing moves while paused, so the controller would answer the same; no need for it.
        return Outcome(
            1,
            f"{key} is paused (spec.suspend): resume it first (canary resume {key.name}), "
            f"then {verb}",
            err=True,
        )
    if not describe.is_current(stored, expected):
        # The status is about an earlier release (or none): the controller starts this one at
        # its next tick and is the one to say what the request does to it.
        return None
    phase, subset = stored.status.phase, describe.subset(stored)
    ended = f"nothing to do: the rollout of {subset} already ended {phase}"
    if verb is Verb.ABORT:
        if phase in describe.ENDED:
            return Outcome(0, ended)
        if phase is Phase.ROLLING_BACK:
            return Outcome(0, f"nothing to do: the rollout of {subset} is already rolling back")
    elif verb is Verb.PROMOTE:
        if phase is Phase.FAILED:
            return Outcome(0, f"{ended} (canary retry {key.name} starts it over)")
        if phase is Phase.SUCCEEDED:
            return Outcome(0, ended)
        if phase is Phase.PROMOTING:
            return Outcome(0, f"nothing to do: {subset} is already being promoted")
        if phase is Phase.ROLLING_BACK:
            return Outcome(
                1,
                f"cannot promote: the rollout of {subset} is rolling back "
                f"({stored.status.message}); once it has Failed, canary retry {key.name} starts "
                "it over",
                err=True,
            )
    elif verb in (Verb.APPROVE, Verb.REJECT):
        record = approvals.pending(stored.status)
        if record is None or phase not in (Phase.INITIALIZING, Phase.PROGRESSING):
            return Outcome(
                1,
                f"nothing to {verb}: no approval waits (the rollout of {subset} is "
                f"{describe.phase(stored.status)})",
                err=True,
            )
        return None
    elif phase is not Phase.FAILED:
        return Outcome(
            0,
            f"nothing to do: the rollout of {subset} is {describe.phase(stored.status)}, not "
            "Failed; retry starts a failed rollout over",
        )
    return None


def ask(
    connection: Connection,
    name: str,
    verb: Verb,
    *,
    by: str,
    force: bool = False,
    timeout: Timeout,
    say: Callable[[str], None],
    poll: float | None = None,
) -> Outcome:
    """Reads, refuses or writes the request, waits for the controller's answer, cleans up.

    Forbidden and NotFound from the write propagate: nothing was written then.
    """
    client, key = connection.client, connection.key(name)
    stored = client.stored(key)
    expected = "" if stored is None else describe.expected_revision(client, stored)
    refused = preflight(verb, key, stored, expected, where=client.where)
    if refused is not None:
        return refused
    assert stored is not None
    assert stored.spec is not None
    command = Command(verb=verb, id=secrets.token_hex(8), force=force, by=by)
    patch: dict[str, object] = {
        "metadata": {"annotations": {COMMAND_ANNOTATION: command.model_dump_json(by_alias=True)}}
    }
    if verb is Verb.ABORT and stored.spec.suspend:
        # A rollback must move the weights, which a paused Canary never does; one write, so
        # the request never stands on a Canary that cannot carry it out.
        patch["spec"] = {"suspend": False}
        say(f"{key} was paused: resuming it so the rollback can move the weights")
    client.patch(key, patch)
    say(f"asked the controller to {verb} {key} (request {command.id}); waiting for its answer")
    result: CommandResult | None = None
    try:
        every = POLL_SECONDS if poll is None else poll
        result = _answer(client, key, command.id, timeout=timeout.seconds, poll=every)
    finally:
        _withdraw(client, key, command.id, say)
    if result is None:
        # Read once more: the controller may have answered between the last look and the
        # withdrawal, and then its answer is the truth.
        late = client.stored(key)
        last = None if late is None else late.status.last_command
        if last is None or last.id != command.id:
            gone = late is None
            return Outcome(
                2,
                f"Canary {key} was deleted before the controller answered"
                if gone
                else f"the controller did not pick the command up within {timeout} "
                "(is it running?)",
                err=True,
            )
        result = last
    if result.accepted:
        return Outcome(0, f"{verb} {key}: {result.message}")
    return Outcome(1, f"{verb} {key} not accepted: {result.message}", err=True)


def _answer(
    client: Client, key: CanaryKey, request: str, *, timeout: float, poll: float
) -> CommandResult | None:
    deadline = time.monotonic() + timeout
    while True:
        stored = client.stored(key)
        if stored is None:
            return None
        last = stored.status.last_command
        if last is not None and last.id == request:
            return last
        if time.monotonic() >= deadline:
            return None
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))


def _withdraw(client: Client, key: CanaryKey, request: str, say: Callable[[str], None]) -> None:
    """Removes the request, unless someone has put another one there meanwhile."""
    try:
        stored = client.stored(key)
        if stored is None or stored.command is None or stored.command.id != request:
            return
        client.patch(key, {"metadata": {"annotations": {COMMAND_ANNOTATION: None}}})
    except NotFound:
        return
    except CanaryError as exc:
        say(
            f"could not remove the request from {COMMAND_ANNOTATION} ({exc}); remove it by hand "
            f"if the controller has not answered it: kubectl annotate canary {key.name} "
            f"-n {key.namespace} {COMMAND_ANNOTATION}-"
        )


def run(
    connection: Connection, name: str, verb: Verb, *, timeout: Timeout, force: bool = False
) -> None:
    """The whole command: ask, print the outcome, exit with its code."""
    import sys

    import click

    from canary.cli.connection import reported, requester

    with reported(connection):
        outcome = ask(
            connection,
            name,
            verb,
            by=requester(),
            force=force,
            timeout=timeout,
            say=click.echo,
        )
    click.echo(outcome.message, err=outcome.err)
    sys.exit(outcome.code)
