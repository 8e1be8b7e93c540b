"""Retries and injected faults: Istio's `retries` and `fault` as Envoy's retry policy and HTTPFault.

Both follow istiod to the letter because a canary's verdict depends on them. Without `retries`,
istiod still gives every outbound route a retry policy (2 attempts on connect failures, refused
streams, `unavailable`, `cancelled` and retriable status codes, never the same host twice), so a
failing canary looks healthier through a sidecar than its own error rate says; the local mesh
must show the same thing. `attempts: 0` (or absent) in a `retries` block turns retries off.

A fault's percentage is per million, as istiod writes it; with no percentage, no request is
faulted (istiod writes 0%, and Envoy reads an absent abort percentage as 0%).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from canary.localmesh.pilot import fields
from canary.localmesh.pilot.fields import Json, Report
from canary.localmesh.pilot.model import FAULT_TYPE

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

_PREVIOUS_HOSTS = {
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3"
        ".PreviousHostsPredicate"
    },
}
_PREVIOUS_PRIORITIES = {
    "name": "envoy.retry_priorities.previous_priorities",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3"
        ".PreviousPrioritiesConfig",
        "update_frequency": 2,
    },
}
_RETRY_KEYS = {
    "attempts",
    "perTryTimeout",
    "retryOn",
    "retryRemoteLocalities",
    "retryIgnorePreviousHosts",
    "backoff",
}


def default_retry_policy() -> Json:
    return {
        "retry_on": DEFAULT_RETRY_ON,
        "num_retries": 2,
        "retry_host_predicate": [_PREVIOUS_HOSTS],
        "host_selection_retry_max_attempts": 5,
    }


def retry_policy(report: Report, route: Mapping[str, Any], path: str) -> Json | None:
    """The route's retry policy; None when the VirtualService turns retries off."""
    retries = fields.get_map(report, route, "retries", path)
    if retries is None:
        return default_retry_policy()
    here = f"{path}.retries"
    fields.check_keys(report, retries, here, supported=_RETRY_KEYS)
    attempts = fields.get_int(report, retries, "attempts", here, maximum=2**31 - 1)
    # Read every field even when retries are off, so a wrong one is still reported.
    per_try = fields.get_duration(report, retries, "perTryTimeout", here, positive=True)
    retry_on = fields.get_str(report, retries, "retryOn", here)
    remote = fields.get_bool(report, retries, "retryRemoteLocalities", here)
    ignore_previous = fields.get_bool(report, retries, "retryIgnorePreviousHosts", here)
    backoff = fields.get_duration(report, retries, "backoff", here, positive=True)
    if not attempts:
        return None
    out = default_retry_policy()
    out["num_retries"] = attempts
    if retry_on:
        conditions, codes = _parse_retry_on(retry_on)
        if codes and "retriable-status-codes" not in conditions:
            conditions.append("retriable-status-codes")
        out["retry_on"] = ",".join(conditions)
        if codes:
            out["retriable_status_codes"] = codes
    if per_try is not None:
        out["per_try_timeout"] = per_try
    if ignore_previous is False:
        del out["retry_host_predicate"]
    if remote:
        out["retry_priority"] = _PREVIOUS_PRIORITIES
    if backoff is not None:
        out["retry_back_off"] = {"base_interval": backoff}
    return out


def _parse_retry_on(text: str) -> tuple[list[str], list[int]]:
    """istiod's parseRetryOn: any part that is a known HTTP status is a retriable status code."""
    conditions: list[str] = []
    codes: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        if part.isdigit() and int(part) in HTTPStatus._value2member_map_:
            codes.append(int(part))
        else:
            conditions.append(part)
    return conditions, codes


def fault(report: Report, route: Mapping[str, Any], path: str) -> Json | None:
    """The route's HTTPFault (for typed_per_filter_config), or None without a `fault` block."""
    found = fields.get_map(report, route, "fault", path)
    if found is None:
        return None
    here = f"{path}.fault"
    fields.check_keys(report, found, here, supported={"delay", "abort"})
    out: Json = {"@type": FAULT_TYPE}
    delay = _delay(report, found, here)
    if delay is not None:
        out["delay"] = delay
    abort = _abort(report, found, here)
    if abort is not None:
        out["abort"] = abort
    if len(out) == 1:
        if "delay" not in found and "abort" not in found:
            report.invalid(here, "a fault needs a delay or an abort")
        return None
    return out


def _delay(report: Report, parent: Mapping[str, Any], path: str) -> Json | None:
    found = fields.get_map(report, parent, "delay", path)
    if found is None:
        return None
    here = f"{path}.delay"
    fields.check_keys(
        report,
        found,
        here,
        supported={"fixedDelay", "percentage", "percent"},
        # istiod logs "Exponential faults are not yet supported" and drops the delay.
        refused={"exponentialDelay": "istiod does not support exponential delays either"},
    )
    fixed = fields.get_duration(report, found, "fixedDelay", here, positive=True)
    percentage = _percentage(report, found, here)
    if fixed is None:
        if "exponentialDelay" not in found:
            report.invalid(f"{here}.fixedDelay", "a delay needs fixedDelay")
        return None
    return {"fixed_delay": fixed, "percentage": percentage or fields.hundredths(0)}


def _abort(report: Report, parent: Mapping[str, Any], path: str) -> Json | None:
    found = fields.get_map(report, parent, "abort", path)
    if found is None:
        return None
    here = f"{path}.abort"
    fields.check_keys(
        report,
        found,
        here,
        supported={"httpStatus", "percentage"},
        refused={
            "grpcStatus": "the local mesh injects HTTP aborts only",
            "http2Error": "the local mesh injects HTTP aborts only",
        },
    )
    status = fields.get_int(report, found, "httpStatus", here, minimum=200, maximum=599)
    percentage = fields.get_percent(report, found, "percentage", here)
    if status is None:
        if "httpStatus" not in found and not ({"grpcStatus", "http2Error"} & set(found)):
            report.invalid(f"{here}.httpStatus", "an abort needs httpStatus")
        return None
    out: Json = {"http_status": status}
    if percentage is not None:
        out["percentage"] = percentage
    return out


def _percentage(report: Report, parent: Mapping[str, Any], path: str) -> Json | None:
    """`percentage` (a double), else the deprecated integer `percent`, as istiod reads them."""
    percentage = fields.get_percent(report, parent, "percentage", path)
    if percentage is not None:
        return percentage
    percent = fields.get_int(report, parent, "percent", path, maximum=100)
    return fields.hundredths(percent) if percent is not None else None
