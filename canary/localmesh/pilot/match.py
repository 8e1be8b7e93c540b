"""An Istio `HTTPMatchRequest` as an Envoy `RouteMatch`, as istiod's TranslateRouteMatch does it.

Header matchers are sorted by name (istiod sorts them so that the config is stable across pushes),
then `method`, `authority` and `scheme` follow as pseudo-header matchers. A header match with no
match type, or the regex "*", means "present", as in istiod. Match conditions that select the
*client* (sourceLabels, a gateway other than "mesh", another source namespace or port) are refused:
the local mesh has one client in one namespace on one port, so such a condition would either
always or never hold, and both would hide what the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.localmesh.pilot import fields
from canary.localmesh.pilot.fields import Json, Report

_MATCH_KEYS = {
    "name",
    "uri",
    "scheme",
    "method",
    "authority",
    "headers",
    "withoutHeaders",
    "queryParams",
    "ignoreUriCase",
    "port",
    "gateways",
    "sourceNamespace",
    "statPrefix",
}
_MATCH_REFUSED = {
    "sourceLabels": "the local mesh's one client Envoy has no workload labels to select on",
}


@dataclass(frozen=True, slots=True)
class Client:
    """Who the routes are built for: the one client-side proxy, its namespace and service port."""

    namespace: str
    port: int


@dataclass(frozen=True, slots=True)
class Match:
    envoy: Json
    # The `name` of the match block, appended to the route's name as istiod does.
    name: str | None
    stat_prefix: str | None


def translate(report: Report, match: Mapping[str, Any], path: str, client: Client) -> Match:
    fields.check_keys(report, match, path, supported=_MATCH_KEYS, refused=_MATCH_REFUSED)
    _check_client(report, match, path, client)
    out: Json = {"prefix": "/"}
    uri = _string_match(report, match, "uri", path)
    if uri is not None:
        out.pop("prefix")
        if "exact" in uri:
            out["path"] = uri["exact"]
        elif "prefix" in uri:
            out["prefix"] = uri["prefix"]
        elif "safe_regex" in uri:
            out["safe_regex"] = uri["safe_regex"]
        else:
            report.invalid(f"{path}.uri", "a uri match needs exact, prefix or regex")
            out["prefix"] = "/"
    ignore_case = fields.get_bool(report, match, "ignoreUriCase", path)
    out["case_sensitive"] = not ignore_case
    headers = _headers(report, match, "headers", path, invert=False)
    headers += _headers(report, match, "withoutHeaders", path, invert=True)
    headers.sort(key=lambda matcher: str(matcher["name"]))
    for key, pseudo in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        found = _string_match(report, match, key, path)
        if found is not None:
            headers.append(_header(pseudo, found))
    if headers:
        out["headers"] = headers
    queries = fields.get_map(report, match, "queryParams", path)
    if queries:
        out["query_parameters"] = [
            _header(name, _string_match(report, queries, name, f"{path}.queryParams") or {})
            for name in sorted(queries)
        ]
    return Match(
        envoy=out,
        name=fields.get_str(report, match, "name", path) or None,
        stat_prefix=fields.get_str(report, match, "statPrefix", path) or None,
    )


def _check_client(report: Report, match: Mapping[str, Any], path: str, client: Client) -> None:
    port = fields.get_int(report, match, "port", path, maximum=65535)
    if port is not None and port != client.port:
        report.refuse(f"{path}.port", f"the local mesh serves only port {client.port}")
    for index, gateway in enumerate(fields.get_strings(report, match, "gateways", path) or []):
        if gateway != "mesh":
            report.refuse(f"{path}.gateways[{index}]", "per-match gateways are not implemented")
    source = fields.get_str(report, match, "sourceNamespace", path)
    if source is not None and source != client.namespace:
        report.refuse(
            f"{path}.sourceNamespace", f"the local mesh's only client is in {client.namespace!r}"
        )


def _headers(
    report: Report, match: Mapping[str, Any], key: str, path: str, *, invert: bool
) -> list[Json]:
    found = fields.get_map(report, match, key, path)
    out: list[Json] = []
    for name in found or {}:
        if name.startswith("@request.auth.claims"):
            report.refuse(f"{path}.{key}.{name}", "JWT claims need an authentication filter")
            continue
        string_match = _string_match(report, found or {}, name, f"{path}.{key}")
        matcher = _header(name, string_match or {})
        if invert:
            matcher["invert_match"] = True
            # istiod: a missing header counts as "" for a negated value match, never for presence.
            if "present_match" not in matcher:
                matcher["treat_missing_header_as_empty"] = True
        out.append(matcher)
    return out


def _header(name: str, string_match: Json) -> Json:
    if not string_match:
        return {"name": name, "present_match": True}
    return {"name": name, "string_match": string_match}


def _string_match(report: Report, parent: Mapping[str, Any], key: str, path: str) -> Json | None:
    """An Istio StringMatch as an Envoy StringMatcher; {} means "present", as does regex "*"."""
    found = fields.get_map(report, parent, key, path)
    if found is None:
        return None
    here = f"{path}.{key}"
    fields.check_keys(report, found, here, supported={"exact", "prefix", "regex"})
    kinds = [kind for kind in ("exact", "prefix", "regex") if kind in found]
    if len(kinds) > 1:
        report.invalid(here, f"a string match takes one of exact, prefix, regex, not {kinds}")
        return None
    if not kinds:
        # Empty means "present"; unknown keys were reported above and mean nothing here.
        return None if found else {}
    kind = kinds[0]
    value = fields.get_str(report, found, kind, here)
    if value is None:
        return None
    if kind == "regex":
        # `*` is not RE2; istiod reads it as "the header is present" (istio/istio#20629).
        return {} if value == "*" else {"safe_regex": {"regex": value}}
    return {kind: value}
