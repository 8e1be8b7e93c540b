"""Durations as users write them (`30s`, `1m`, `1h30m`, `250ms`), parsed once and cached.

Specs keep the text, so a Canary round-trips through YAML unchanged; the engine asks for seconds.
A duration that does not parse is a validation error: silently replacing it with a default (as
Flagger's `GetAnalysisInterval` does) would run a rollout on a schedule nobody wrote. So is one
outside its field's bounds (`within`): `100000000h` parses, but a deadline that far out is past
the end of the calendar, and the engine could not even compute it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_WHOLE = re.compile(PATTERN)
# The most of a duration's text a message repeats: a line stays a line.
_SHOWN = 40
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@functools.lru_cache(maxsize=4096)
def seconds(text: str) -> float:
    """The length of `text` in seconds; ValueError names what is allowed when it does not parse."""
    if not _WHOLE.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit (ms, s, m, h), "
            "e.g. 30s, 1m, 1h30m"
        )
    total = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    if total <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return total


def check(text: str) -> str:
    """A pydantic validator: keeps the text, fails when it is not a positive duration."""
    seconds(text)
    return text


def within(lowest: str, highest: str) -> Callable[[str], str]:
    """A pydantic validator like `check` that also refuses a duration outside lowest..highest."""
    low, high = seconds(lowest), seconds(highest)

    def bounded(text: str) -> str:
        length = seconds(text)
        shown = text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}..."
        if length < low:
            raise ValueError(f"{shown} is shorter than {lowest} (allowed: {lowest}..{highest})")
        if length > high:
            raise ValueError(f"{shown} is longer than {highest} (allowed: {lowest}..{highest})")
        return text

    return bounded
