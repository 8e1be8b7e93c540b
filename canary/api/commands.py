"""What people and pipelines ask of a running rollout: promote, abort, retry.

The controller is the only writer of a Canary's status, so a command never writes the status
itself: `canary promote|abort|retry` puts one request in the `canary.dev/command` annotation,
the controller acts on it at its next tick and records it in `status.lastCommand` (by id, so a
request is carried out once however long the annotation stays), and the command then removes
the annotation. Pausing and resuming are `spec.suspend`, which is the spec's own switch.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from canary.api.base import Model

COMMAND_ANNOTATION = "canary.dev/command"


class Verb(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    RETRY = "retry"
    APPROVE = "approve"
    REJECT = "reject"


class Command(Model):
    verb: Verb = Field(description="promote, abort, retry, approve or reject.")
    id: str = Field(min_length=1, max_length=64, description="Unique per request.")
    force: bool = Field(
        default=False,
        description="promote only: skip the current step's checks too (otherwise the latest "
        "result of each of them must be a pass).",
    )
    by: str = Field(default="", description="Who asked, for the Event (e.g. a pipeline's run).")
    via: str = Field(
        default="cli", max_length=16, description="How it was asked: cli, or slack for a click."
    )
    revision: str = Field(
        default="",
        max_length=64,
        description="approve/reject from a message: the revision the message was about; a "
        "decision for another revision decides nothing.",
    )
    gate: str = Field(
        default="",
        max_length=64,
        description="approve/reject from a message: the gate it was about; a decision for a "
        "gate that no longer waits decides nothing.",
    )


class CommandResult(Model):
    """The last command the controller handled, and what came of it."""

    id: str = Field(description="The command's id.")
    verb: Verb = Field(description="promote, abort, retry, approve or reject.")
    accepted: bool = Field(description="False when there was nothing to do; message says why.")
    message: str = Field(default="", description="What the controller did, or why nothing.")
    at: datetime = Field(description="When the controller handled it.")


def command_of(metadata: Mapping[str, Any]) -> Command | None:
    """The command a Canary's annotations hold; None when none, or unreadable.

    The CLI validates a command before it writes it, so an unreadable one was written by hand;
    it is ignored rather than allowed to make the Canary itself invalid.
    """
    annotations = metadata.get("annotations") or {}
    text = annotations.get(COMMAND_ANNOTATION) if isinstance(annotations, Mapping) else None
    if not isinstance(text, str):
        return None
    return _parsed(text)


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> Command | None:
    try:
        return Command.model_validate_json(text)
    except ValueError:
        return None
