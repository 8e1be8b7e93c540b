"""Durations as users write them (`30s`, `1m`, `1h30m`, `250ms`), parsed once and cached.

Specs keep the text, so a Canary round-trips through YAML unchanged; the engine asks for seconds.
A duration that does not parse is a validation error: silently replacing it with a default (as
Flagger's `GetAnalysisInterval` does) would run a rollout on a schedule nobody wrote.
"""

from __future__ import annotations

import functools
import re

PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_WHOLE = re.compile(PATTERN)
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
