"""Counts over an exact window: how much a cumulative count grew between two moments.

A comparing check is judged on counts (engine/sequential.py), and its error bound holds only
if every request is counted once: consecutive readings must tile time, with whole numbers.
`increase()` does neither: it extrapolates each series to the window's edges (fractions of a
request, and overlaps between windows) and takes a series' first sample as its start, so a
counter created by the event it counts (Envoy's 5xx class, a span metric's error status) loses
that event. Here the count is the cumulative expression's value at the window's end less its
value at the start (none there: 0), as the chaos verdict reads its window (builtins._window),
but with PromQL's `@` on a subquery, so any expression a template writes can be read this way,
not only a selector.

Histogram bounds: a latency check's bad events are the requests over `compare.slowerThan`,
the +Inf bucket less the bound's. The bucket is found by its `le` label text, which is spelled
differently by different writers and Prometheus versions (Prometheus 3 rewrites `250` as
`250.0` and `3600000` as `3.6e+06` on ingestion; Envoy and Prometheus 2 keep what the target
wrote): `bound_pattern` matches each spelling of the number.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

# The subquery each end is read with: the expression's last value in the minute before the
# moment, on a one-second grid (its selectors look back five minutes, as in any query).
_SUBQUERY = "[1m:1s]"


def window(expression: str, *, since: datetime, now: datetime, absent_is_zero: bool) -> str:
    """PromQL for how much `expression` (cumulative, one series) grew from `since` to `now`.

    No series at `since` is 0 there (a series created within the window counts from zero);
    no series at `now` is no data, or 0 when `absent_is_zero`. Clamped at 0: a count never
    goes down, and a sum whose series was reset is not a negative number of requests.
    """

    def at(moment: datetime) -> str:
        return f"last_over_time(({expression}){_SUBQUERY} @ {moment.timestamp():.3f})"

    grown = f"clamp_min({at(now)} - ({at(since)} or vector(0)), 0)"
    return f"{grown} or vector(0)" if absent_is_zero else grown


def milliseconds(seconds: float) -> float:
    """A bound in seconds as the histogram's milliseconds, without the float's noise
    (1.1 s is 1100 ms, not 1100.0000000000002)."""
    return float(f"{seconds * 1000:.9g}")


def bound_pattern(value: float) -> str:
    """A regex (for `le=~"..."`) matching every spelling of the bucket bound `value`."""
    return "|".join(
        spelling.replace(".", "[.]").replace("+", "[+]") for spelling in spellings(value)
    )


def spellings(value: float) -> tuple[str, ...]:
    """How an exporter or Prometheus may write `value` as an `le` label: plain (`250`,
    `2.5`), with `.0` when whole (Prometheus 3, Python clients), and Go's shortest `%g`
    (`3.6e+06`), which Prometheus 3 and Go clients write for 10^6 and over."""
    exact = Decimal(repr(value)).normalize()
    plain = format(exact, "f")
    found = [plain]
    if "." not in plain:
        found.append(f"{plain}.0")
    go = _go_shortest(exact)
    found.append(go)
    if "." not in go and "e" not in go:
        found.append(f"{go}.0")
    return tuple(dict.fromkeys(found))


def _go_shortest(exact: Decimal) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64): the shortest digits, in exponent form when the
    exponent is below -4 or at least 6 (two exponent digits at least)."""
    _, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)
    count = len(digits)
    point = count + exponent  # where the decimal point falls after the first `point` digits
    power = point - 1
    shown = "".join(str(digit) for digit in digits)
    if power < -4 or power >= 6:
        mantissa = shown[0] + (f".{shown[1:]}" if count > 1 else "")
        sign = "-" if power < 0 else "+"
        return f"{mantissa}e{sign}{abs(power):02d}"
    if point <= 0:
        return "0." + "0" * -point + shown
    if point >= count:
        return shown + "0" * (point - count)
    return f"{shown[:point]}.{shown[point:]}"
