"""Envoy's HTTP fault filter config (`extensions.filters.http.fault.v3.HTTPFault`) as proto JSON.

Both places a fault is served from write it: the EnvoyFilter istiod hands to the canary's
sidecars, and the local mesh's inbound Envoys. Plain values in, a dict out; ValueError says what
Envoy could not express, and each caller turns that into its own error.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# Envoy's FractionalPercent denominators, coarsest first.
_DENOMINATORS = (("HUNDRED", 1), ("TEN_THOUSAND", 100), ("MILLION", 10_000))


def http_fault(
    *,
    abort_status: int | None = None,
    abort_percent: float = 0.0,
    delay_seconds: float | None = None,
    delay_percent: float = 0.0,
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if abort_status is not None:
        config["abort"] = {"http_status": abort_status, "percentage": fractional(abort_percent)}
    if delay_seconds is not None:
        if delay_seconds < 0:
            raise ValueError(f"a delay of {delay_seconds:g}s is negative")
        config["delay"] = {
            "fixed_delay": proto_duration(delay_seconds),
            "percentage": fractional(delay_percent),
        }
    if not config:
        raise ValueError("a fault needs an abort and/or a delay")
    return config


def fractional(percent: float) -> dict[str, Any]:
    """`percent` as Envoy's FractionalPercent, in the coarsest denominator that holds it exactly
    (0.5 % is 50 per TEN_THOUSAND); finer than one in a million is rounded to that."""
    if not 0 < percent <= 100:
        raise ValueError(f"a percentage must be in (0, 100], not {percent:g}")
    # The decimal digits as written, not the binary float's: 0.1 is exactly 10 per 10_000.
    exact = Decimal(repr(percent))
    for denominator, scale in _DENOMINATORS:
        scaled = exact * scale
        if scaled == scaled.to_integral_value():
            return {"numerator": int(scaled), "denominator": denominator}
    numerator = int((exact * 10_000).to_integral_value())
    if numerator == 0:
        raise ValueError(f"{percent:g}% is finer than Envoy's one in a million (0.0001%)")
    return {"numerator": numerator, "denominator": "MILLION"}


def proto_duration(seconds: float) -> str:
    """A protobuf JSON Duration: seconds with at most nine decimals and an `s`."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"
