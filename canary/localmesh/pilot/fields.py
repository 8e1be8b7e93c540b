"""Reading Istio objects as the plain dicts they arrived as, naming every field we cannot honour.

The Pilot promises that nothing in a VirtualService or DestinationRule is dropped silently. Each
reader therefore declares the keys it translates and the keys it refuses (with the reason), and
any other key is refused as unknown. Problems are recorded, not raised, so that one translation
reports every problem in every object at once and the user fixes them in one pass.

Values are checked for type as they are read; a wrong type is a problem at that field and reads
as absent, so the translation carries on and finds the next problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

_NO_REFUSALS: Mapping[str, str] = {}


@dataclass
class Report:
    """The problems found in one object; `subject` names it, e.g. "VirtualService ns/name"."""

    subject: str
    problems: list[str] = field(default_factory=list)

    def refuse(self, path: str, why: str) -> None:
        """A field that is valid Istio but that the local mesh cannot express."""
        self.problems.append(f"{self.subject} {path}: not supported by the local mesh ({why})")

    def invalid(self, path: str, why: str) -> None:
        """A field whose value is wrong (istiod's webhook would reject it too)."""
        self.problems.append(f"{self.subject} {path}: {why}")


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_keys(
    report: Report,
    value: Mapping[str, Any],
    path: str,
    *,
    supported: Collection[str],
    refused: Mapping[str, str] = _NO_REFUSALS,
) -> None:
    for key in value:
        if key in refused:
            report.refuse(join(path, key), refused[key])
        elif key not in supported:
            report.refuse(join(path, key), "unknown field")


def mapping(report: Report, value: Any, path: str) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return value
    report.invalid(path, f"expected an object, got {_kind(value)}")
    return None


def get_map(
    report: Report, parent: Mapping[str, Any], key: str, path: str
) -> Mapping[str, Any] | None:
    if parent.get(key) is None:
        return None
    return mapping(report, parent[key], join(path, key))


def get_list(report: Report, parent: Mapping[str, Any], key: str, path: str) -> list[Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        return value
    report.invalid(join(path, key), f"expected a list, got {_kind(value)}")
    return None


def get_str(report: Report, parent: Mapping[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    report.invalid(join(path, key), f"expected a string, got {_kind(value)}")
    return None


def get_bool(report: Report, parent: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = parent.get(key)
    if value is None or isinstance(value, bool):
        return value
    report.invalid(join(path, key), f"expected true or false, got {_kind(value)}")
    return None


def get_int(
    report: Report,
    parent: Mapping[str, Any],
    key: str,
    path: str,
    *,
    minimum: int = 0,
    maximum: int = 2**32 - 1,
) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    # YAML gives ints; a JSON round trip may give 5.0. A bool is an int to Python, not to Istio.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        report.invalid(join(path, key), f"expected an integer, got {_kind(value)}")
        return None
    if not minimum <= value <= maximum:
        report.invalid(join(path, key), f"{value} is outside {minimum}..{maximum}")
        return None
    return value


def get_strings(report: Report, parent: Mapping[str, Any], key: str, path: str) -> list[str] | None:
    items = get_list(report, parent, key, path)
    if items is None:
        return None
    if all(isinstance(item, str) for item in items):
        return items
    report.invalid(join(path, key), "expected a list of strings")
    return None


def get_string_map(
    report: Report, parent: Mapping[str, Any], key: str, path: str
) -> dict[str, str] | None:
    found = get_map(report, parent, key, path)
    if found is None:
        return None
    if all(isinstance(value, str) for value in found.values()):
        return dict(found)
    report.invalid(join(path, key), "expected a map of strings to strings")
    return None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_NANOS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration(text: str) -> int | None:
    """Nanoseconds in a Go duration ("1m30s", "0.5s", "250ms"), as Istio's YAML accepts them."""
    if text == "0":
        return 0
    total, position = 0.0, 0
    while position < len(text):
        part = _DURATION_PART.match(text, position)
        if part is None:
            return None
        total += float(part.group(1)) * _NANOS[part.group(2)]
        position = part.end()
    return round(total) if text else None


def envoy_duration(nanos: int) -> str:
    """The protobuf JSON form Envoy reads: whole seconds, or seconds with a fraction."""
    seconds, rest = divmod(nanos, 10**9)
    return f"{seconds}s" if rest == 0 else f"{seconds}.{rest:09d}".rstrip("0") + "s"


def get_duration(
    report: Report, parent: Mapping[str, Any], key: str, path: str, *, positive: bool = False
) -> str | None:
    """The field as an Envoy duration string; Istio rejects durations under a millisecond."""
    text = get_str(report, parent, key, path)
    if text is None:
        return None
    nanos = parse_duration(text)
    if nanos is None:
        report.invalid(join(path, key), f"{text!r} is not a duration (e.g. 10s, 1.5s, 250ms, 1m)")
        return None
    if positive and nanos < 10**6:
        report.invalid(join(path, key), f"{text!r} must be at least 1ms")
        return None
    return envoy_duration(nanos)


def get_percent(report: Report, parent: Mapping[str, Any], key: str, path: str) -> Json | None:
    """An Istio `Percent` ({value: 0..100}) as istiod writes it: a FractionalPercent per million."""
    found = get_map(report, parent, key, path)
    if found is None:
        return None
    here = join(path, key)
    check_keys(report, found, here, supported={"value"})
    value = found.get("value", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        report.invalid(f"{here}.value", f"expected a number, got {_kind(value)}")
        return None
    if not 0 <= value <= 100:
        report.invalid(f"{here}.value", f"{value} is outside 0..100")
        return None
    return {"numerator": int(value * 10000), "denominator": "MILLION"}


def hundredths(value: int) -> Json:
    """An integer percentage as istiod writes the deprecated integer `percent` fields."""
    return {"numerator": value, "denominator": "HUNDRED"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)
