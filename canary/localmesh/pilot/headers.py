"""Istio `headers` (request/response set, add, remove) as Envoy header operations.

istiod writes `set` as OVERWRITE_IF_EXISTS_OR_ADD and `add` as APPEND_IF_EXISTS_OR_ADD, each sorted
by key so the config does not churn between pushes, and turns a request `:authority` or `host`
set into a host rewrite. It drops other pseudo-headers silently; here they are refused, because
Envoy cannot change them and the user should know their line does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canary.localmesh.pilot import fields
from canary.localmesh.pilot.fields import Json, Report

_APPEND_ACTIONS = (("set", "OVERWRITE_IF_EXISTS_OR_ADD"), ("add", "APPEND_IF_EXISTS_OR_ADD"))


@dataclass
class Operations:
    """Envoy's header fields (`request_headers_to_add`...) and a host rewrite, if any."""

    envoy: Json = field(default_factory=dict)
    authority: str | None = None

    def apply_to(self, out: Json) -> None:
        """Appends the operations to a route or weighted cluster that may already have some."""
        for key, values in self.envoy.items():
            out.setdefault(key, []).extend(values)


def operations(report: Report, parent: Mapping[str, Any], path: str) -> Operations:
    out = Operations()
    headers = fields.get_map(report, parent, "headers", path)
    if headers is None:
        return out
    here = f"{path}.headers"
    fields.check_keys(report, headers, here, supported={"request", "response"})
    for side in ("request", "response"):
        ops = fields.get_map(report, headers, side, here)
        if ops is None:
            continue
        where = f"{here}.{side}"
        fields.check_keys(report, ops, where, supported={"set", "add", "remove"})
        for op, action in _APPEND_ACTIONS:
            for key, value in sorted((fields.get_string_map(report, ops, op, where) or {}).items()):
                if side == "request" and key.lower() in (":authority", "host"):
                    # A `set` wins over an `add`, as in istiod; `set` comes first, so keep it.
                    out.authority = value if op == "set" or out.authority is None else out.authority
                elif _internal(key):
                    report.refuse(f"{where}.{op}.{key}", "Envoy cannot modify this header")
                else:
                    entry = {"header": {"key": key, "value": value}, "append_action": action}
                    out.envoy.setdefault(f"{side}_headers_to_add", []).append(entry)
        for key in fields.get_strings(report, ops, "remove", where) or []:
            if _internal(key):
                report.refuse(f"{where}.remove", f"Envoy cannot remove {key!r}")
            else:
                out.envoy.setdefault(f"{side}_headers_to_remove", []).append(key)
    return out


def _internal(key: str) -> bool:
    return key.startswith(":") or key.lower() == "host"
