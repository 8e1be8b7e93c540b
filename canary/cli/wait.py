"""`canary wait NAME`: follow this release to its end, for a pipeline step that must not pass
before the rollout did.

"This release" is the revision the controller will judge for the spec and the target's pod
template as they are now, worked out as the controller works it out. A status about another
revision is an earlier release (one that may well have ended Succeeded): it is never the
verdict, or a pipeline that ran `canary release` a moment before the controller's next tick
would pass on the previous rollout's success.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import click

from canary.cli import params
from canary.cli.connection import Connection, connected, reported
from canary.cli.root import main

if TYPE_CHECKING:
    from canary.ports import StoredCanary

POLL_SECONDS = 1.0

# Exit codes, as a pipeline reads them.
SUCCEEDED, FAILED, GAVE_UP = 0, 1, 2


@main.command()
@click.argument("name")
@click.option(
    "--timeout",
    callback=params.duration,
    default="30m",
    show_default=True,
    help="How long to wait at most (a duration: 90s, 30m, 1h).",
)
@connected()
def wait(*, connection: Connection, name: str, timeout: params.Timeout) -> None:
    """Wait for this release of NAME to end, printing a line whenever it moves, and one
    whenever a gate (a confirm-* webhook) starts or stops holding it. The last line is the
    verdict.

    Exits 0 when it Succeeded, 1 when it Failed or is Invalid, 2 on timeout or when the Canary
    is gone or not found (it does not wait for one to be created). A rollout of an earlier
    revision that already ended is not this release.
    """
    with reported(connection):
        code = follow(connection, name, timeout=timeout, say=_say)
    sys.exit(code)


def _say(line: str, *, err: bool = False) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    click.echo(f"{stamp} {line}", err=err)


def follow(
    connection: Connection,
    name: str,
    *,
    timeout: params.Timeout,
    say: Callable[..., None],
    poll: float | None = None,
) -> int:
    """Polls until this release ends; the exit code."""
    from canary.api.status import Phase
    from canary.cli import describe
    from canary.errors import Unavailable

    client, key = connection.client, connection.key(name)
    every = POLL_SECONDS if poll is None else poll
    deadline = time.monotonic() + timeout.seconds
    expected = ""
    said = ""
    held = ""
    seen = False
    unreachable = False
    while True:
        try:
            stored = client.stored(key)
            revision = "" if stored is None else describe.expected_revision(client, stored)
        except Unavailable as exc:
            # A pipeline's wait outlives a blip of the API server; it says so once.
            if not unreachable:
                say(f"cannot reach {client.where} ({exc}); trying again", err=True)
            unreachable = True
        else:
            unreachable = False
            if stored is None:
                what = "was deleted" if seen else "not found"
                say(f"Canary {key} {what} ({client.where})", err=True)
                return GAVE_UP
            if stored.spec is None:
                say(f"Canary {key} is invalid: {describe.problems(stored)}", err=True)
                return FAILED
            if seen and revision != expected:
                say(f"the spec or the target's pod template changed: now waiting for {revision}")
            seen, expected = True, revision
            status = stored.status
            # A gate starting or stopping to hold this release is said on a line of its own,
            # before the verdict, so that the last line is always the verdict.
            holding = status.waiting_for if describe.is_current(stored, expected) else ""
            if holding != held:
                if held:
                    say(f"{held} no longer holds the rollout")
                if holding:
                    say(f"{holding} holds the rollout: waiting for it to say yes")
                held = holding
            if describe.is_current(stored, expected):
                if status.phase is Phase.SUCCEEDED:
                    say(f"Succeeded: {status.message} (revision {expected})")
                    return SUCCEEDED
                if status.phase in (Phase.FAILED, Phase.INVALID):
                    say(f"{status.phase}: {status.message} (revision {expected})")
                    return FAILED
            line = progress(stored, expected)
            if line != said:
                say(line)
                said = line
        if time.monotonic() >= deadline:
            say(f"timed out after {timeout} waiting for {key}: {said or 'no answer'}", err=True)
            return GAVE_UP
        time.sleep(max(0.0, min(every, deadline - time.monotonic())))


def progress(stored: StoredCanary, expected: str) -> str:
    """One line on where this release is, or on what the status is about instead."""
    from canary.cli import describe

    status = stored.status
    unseen = describe.unseen_generation(stored)
    if not describe.is_current(stored, expected):
        about = (
            f"the status is about revision {status.revision} ({describe.phase(status)})"
            if status.revision
            else "no status yet"
        )
        parts = [f"waiting for the controller to start revision {expected}", unseen, about]
        return "; ".join(part for part in parts if part)
    paused = " (paused)" if stored.spec is not None and stored.spec.suspend else ""
    parts = [f"{describe.phase(status)}{paused}", f"weight {status.canary_weight}%"]
    message, about_the_step = describe.step_message(stored)
    if about_the_step:
        # "step 2/3: weight 25 is live", not "step 2/3, step 2/3: weight 25 is live".
        shown = f"step {describe.step(stored)}"
        parts.append(f"{shown}: {message}" if message else shown)
        message = ""
    else:
        parts.append(f"step {describe.step(stored)}")
    if status.waiting_for:
        parts.append(f"waiting for {status.waiting_for}")
    parts += [message, unseen]
    return ", ".join(part for part in parts if part)
