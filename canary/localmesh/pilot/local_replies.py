"""Routes that Envoy answers itself: Istio's `redirect` and `directResponse`, as istiod writes them.

A redirect without a code is a 301. A derived port (`FROM_REQUEST_PORT`) is the listener's port,
since Envoy cannot derive it and every request on this route came in on that port; the default
port of the scheme is left out of the Location header, as istiod does. istiod logs and drops a
redirect code Envoy lacks; here it is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canary.localmesh.pilot import fields
from canary.localmesh.pilot.fields import Json, Report

_REDIRECT_CODES = {
    301: "MOVED_PERMANENTLY",
    302: "FOUND",
    303: "SEE_OTHER",
    307: "TEMPORARY_REDIRECT",
    308: "PERMANENT_REDIRECT",
}
_REDIRECT_KEYS = {"uri", "authority", "port", "derivePort", "scheme", "redirectCode"}
_REDIRECT_FIELDS = (
    ("authority", "host_redirect"),
    ("uri", "path_redirect"),
    ("scheme", "scheme_redirect"),
)


def redirect(report: Report, route: Mapping[str, Any], path: str, *, port: int) -> Json:
    here = f"{path}.redirect"
    found = fields.get_map(report, route, "redirect", path) or {}
    fields.check_keys(report, found, here, supported=_REDIRECT_KEYS)
    out: Json = {}
    for key, envoy in _REDIRECT_FIELDS:
        value = fields.get_str(report, found, key, here)
        if value:
            out[envoy] = value
    redirect_port = fields.get_int(report, found, "port", here, maximum=65535)
    derive = fields.get_str(report, found, "derivePort", here)
    if derive == "FROM_REQUEST_PORT":
        redirect_port = port
    elif derive not in (None, "FROM_PROTOCOL_DEFAULT"):
        report.invalid(f"{here}.derivePort", f"unknown value {derive!r}")
    scheme = out.get("scheme_redirect", "http")
    if redirect_port and (redirect_port, scheme) not in ((80, "http"), (443, "https")):
        out["port_redirect"] = redirect_port
    code = fields.get_int(report, found, "redirectCode", here) or 301
    if code not in _REDIRECT_CODES:
        report.refuse(f"{here}.redirectCode", f"Envoy redirects with {sorted(_REDIRECT_CODES)}")
    out["response_code"] = _REDIRECT_CODES.get(code, "MOVED_PERMANENTLY")
    return out


def direct_response(report: Report, route: Mapping[str, Any], path: str) -> Json:
    here = f"{path}.directResponse"
    found = fields.get_map(report, route, "directResponse", path) or {}
    fields.check_keys(report, found, here, supported={"status", "body"})
    status = fields.get_int(report, found, "status", here, minimum=200, maximum=599)
    if status is None:
        report.invalid(f"{here}.status", "a direct response needs a status in 200..599")
    out: Json = {"status": status or 200}
    body = fields.get_map(report, found, "body", here)
    if body is not None:
        where = f"{here}.body"
        fields.check_keys(report, body, where, supported={"string", "bytes"})
        if "string" in body:
            out["body"] = {"inline_string": fields.get_str(report, body, "string", where) or ""}
        elif "bytes" in body:
            # Istio and Envoy JSON both carry bytes as base64, so the text passes through.
            out["body"] = {"inline_bytes": fields.get_str(report, body, "bytes", where) or ""}
    return out
