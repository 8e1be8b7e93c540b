"""Option values the commands share, checked by click (as option callbacks) so a bad one is a
usage error (exit 2) that names the option, before anything is read or written."""

from __future__ import annotations

import re
from dataclasses import dataclass

import click

# Kubernetes' label syntax: an optional DNS prefix, a name and a value of at most 63 characters.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")


@dataclass(frozen=True, slots=True)
class Timeout:
    """A duration as the user wrote it (for messages) and in seconds."""

    text: str
    seconds: float

    def __str__(self) -> str:
        return self.text


def duration(_ctx: click.Context, _param: click.Parameter, value: str) -> Timeout:
    from canary.api import durations

    try:
        return Timeout(value, durations.seconds(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def labels(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> dict[str, str] | None:
    """`k=v,k2=v2` as a dict; '' is none; None when the option was not given."""
    if value is None:
        return None
    found: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, equals, text = item.partition("=")
        if not equals or not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(text):
            raise click.BadParameter(
                f"{item!r} is not a label: give k=v,k=v with Kubernetes label names and values "
                "(e.g. app=accounts,version=v3)"
            )
        if key in found:
            raise click.BadParameter(f"label {key!r} is given twice")
        found[key] = text
    return found


# The --timeout of the commands that ask the controller and wait for its answer.
answer_timeout = click.option(
    "--timeout",
    callback=duration,
    default="60s",
    show_default=True,
    help="How long to wait for the controller's answer (a duration).",
)
