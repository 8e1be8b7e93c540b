"""The series a PromQL query reads: its vector selectors, as preflight asks Prometheus about them.

Preflight asks, before the first step, whether the series each metric check needs exist. The
check's query itself is no such question: the canary has no traffic yet, and a query for the
stable's 5xx rate is empty while the stable is healthy. So each vector selector of the query
(rendered for the stable subset) is asked alone as `count(<selector>)`, keeping the metric name
and its positive matchers (`=`, `=~`) but not those on a response's outcome (`response_code`,
`envoy_response_code_class`, ...): a healthy stable may never have answered a 5xx, and the
series that would carry one appear with the first. Negative matchers (`!=`, `!~`) are dropped
too, since they only narrow a series family that the positive ones already name. What is asked
is then exactly "does this metric, for this workload, exist", which is what a missing Telemetry
setting, an unscraped proxy or a wrong label would make false.

This reads PromQL's lexical structure (strings, brackets, function calls and the label lists of
`by`/`without`/`on`/`ignoring`/`group_*`), not its grammar; a query it cannot read yields no
selector for that part, and preflight says so rather than passing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Labels that tell a response's outcome apart: asked without them (see above).
OUTCOME_LABELS = frozenset(
    {
        "response_code",
        "response_flags",
        "grpc_response_status",
        "envoy_response_code_class",
        "envoy_response_code",
        "code",
        "status",
        "status_code",
        "http_status_code",
        "otel_status_code",
        "status_code_class",
    }
)
# Words that are PromQL, not metric names (an aggregation may come before its `by (...)`).
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end", "atan2"}
    | {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk"}
    | {"quantile", "count_values", "limitk", "limit_ratio"}
)
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"[0-9.][0-9A-Za-z_.+]*")
_MATCHER = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*"
)


class Unreadable(ValueError):
    """A query whose selectors cannot be told apart (an unclosed string or brace)."""


@dataclass(frozen=True, slots=True)
class Selector:
    name: str
    # (label, operator, value as written, quotes included), in the query's order.
    matchers: tuple[tuple[str, str, str], ...]

    def asked(self) -> str:
        """The selector preflight asks about: the name and the positive matchers that do not
        tell outcomes apart."""
        kept = [
            f"{label}{op}{value}"
            for label, op, value in self.matchers
            if op in ("=", "=~") and label not in OUTCOME_LABELS and label != "__name__"
        ]
        name = self.name or next(
            (value for label, op, value in self.matchers if label == "__name__" and op == "="), ""
        )
        if not self.name and name:
            kept.insert(0, f"__name__={name}")
            name = ""
        return f"{name}{{{','.join(kept)}}}" if kept else name


def selectors(query: str) -> tuple[Selector, ...]:
    """Every vector selector of `query`, once each, in order. Raises Unreadable."""
    found: list[Selector] = []
    i, n = 0, len(query)
    while i < n:
        char = query[i]
        if char in "\"'`":
            i = _string_end(query, i)
        elif char == "[":
            i = _closing(query, i, "[", "]")
        elif char == "{":
            end = _closing(query, i, "{", "}")
            found.append(Selector("", _matchers(query[i + 1 : end - 1])))
            i = end
        elif char.isdigit() or (char == "." and i + 1 < n and query[i + 1].isdigit()):
            i = _NUMBER.match(query, i).end()  # type: ignore[union-attr]
        elif (word := _NAME.match(query, i)) is not None:
            i = word.end()
            name = word.group()
            after = _skip_space(query, i)
            if name.lower() in _LABEL_LISTS:
                if after < n and query[after] == "(":
                    i = _closing(query, after, "(", ")")
            elif (after < n and query[after] == "(") or name.lower() in _KEYWORDS:
                continue
            elif after < n and query[after] == "{":
                end = _closing(query, after, "{", "}")
                found.append(Selector(name, _matchers(query[after + 1 : end - 1])))
                i = end
            else:
                found.append(Selector(name, ()))
        else:
            i += 1
    unique: dict[Selector, None] = dict.fromkeys(found)
    return tuple(unique)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _string_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    raise Unreadable(f"unclosed string at character {start}")


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """The index just past the bracket that closes the one at `start`."""
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char in "\"'`":
            i = _string_end(text, i)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise Unreadable(f"unclosed {opening!r} at character {start}")


def _matchers(block: str) -> tuple[tuple[str, str, str], ...]:
    matchers: list[tuple[str, str, str]] = []
    i = 0
    while i < len(block):
        match = _MATCHER.match(block, i)
        if match is None:
            if block[i:].strip(" \t\n,") == "":
                break
            raise Unreadable(f"label matchers not understood: {block[i:]!r}")
        label, op, value = match.groups()
        matchers.append((label, op, value))
        i = match.end()
        if i < len(block) and block[i] == ",":
            i += 1
    return tuple(matchers)
