"""One Istio `HTTPRoute` as Envoy routes, the way istiod's TranslateRoute builds them.

Each match block becomes its own Envoy route with the same action, in order; a route without
matches is a catch-all. The action is one of: destinations (one cluster, or weighted clusters
without the zero-weight ones, exactly as istiod does), a redirect, or a direct response. Timeouts,
retries, mirrors and rewrites belong to destinations only, so they are refused next to a redirect
or a direct response instead of being ignored as istiod would.

Where the destination clusters come from (services, subsets, ports) is the caller's business: it
passes `resolve`, which names the cluster for an Istio `Destination` or reports why it cannot.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from canary.localmesh.pilot import failure, fields, headers, local_replies, match
from canary.localmesh.pilot.fields import Json, Report
from canary.localmesh.pilot.model import FAULT_FILTER

# Names the Envoy cluster for an Istio Destination, or reports the problem and gives None.
Resolve = Callable[[Report, Mapping[str, Any], str], "str | None"]

_ROUTE_KEYS = {
    "name",
    "match",
    "route",
    "redirect",
    "directResponse",
    "rewrite",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrors",
    "mirrorPercentage",
    "headers",
}
_ROUTE_REFUSED = {
    "delegate": "delegation to other VirtualServices is not implemented",
    "corsPolicy": "the local mesh's client Envoy runs no CORS filter",
    "mirrorPercent": "deprecated; use mirrorPercentage",
    "mirror_percent": "deprecated; use mirrorPercentage",
}
_DESTINATION_ONLY = ("rewrite", "timeout", "retries", "mirror", "mirrors", "mirrorPercentage")


@dataclass(frozen=True, slots=True)
class Source:
    """The VirtualService a route comes from, for names, metadata and host resolution."""

    name: str
    config: str  # istiod's `istio.config` metadata path
    client: match.Client
    resolve: Resolve


def translate(report: Report, route: Mapping[str, Any], path: str, source: Source) -> list[Json]:
    fields.check_keys(report, route, path, supported=_ROUTE_KEYS, refused=_ROUTE_REFUSED)
    name = fields.get_str(report, route, "name", path) or ""
    # Matches first, so that problems come in the order a reader meets them.
    matches: list[match.Match | None] = []
    for index, block in enumerate(fields.get_list(report, route, "match", path) or [None]):
        here = f"{path}.match[{index}]"
        found = None if block is None else fields.mapping(report, block, here)
        matches.append(
            None if found is None else match.translate(report, found, here, source.client)
        )
    template: Json = {"metadata": {"filter_metadata": {"istio": {"config": source.config}}}}
    route_headers = headers.operations(report, route, path)
    route_headers.apply_to(template)
    kinds = [kind for kind in ("route", "redirect", "directResponse") if route.get(kind)]
    if len(kinds) != 1:
        if "delegate" not in route:  # refused already: no second problem for the same cause
            report.invalid(path, f"needs one of route, redirect, directResponse, not {kinds}")
    elif kinds[0] == "route":
        template["route"] = _action(
            report, route, path, source=source, out=template, route_headers=route_headers
        )
    else:
        for key in _DESTINATION_ONLY:
            if key in route:
                report.invalid(f"{path}.{key}", f"applies to destinations, not to a {kinds[0]}")
        if route_headers.authority is not None:
            report.invalid(f"{path}.headers", "an authority rewrite needs destinations")
        if kinds[0] == "redirect":
            port = source.client.port
            template["redirect"] = local_replies.redirect(report, route, path, port=port)
        else:
            template["direct_response"] = local_replies.direct_response(report, route, path)
    fault = failure.fault(report, route, path)
    if fault is not None:
        template["typed_per_filter_config"] = {FAULT_FILTER: fault}

    routes: list[Json] = []
    for translated in matches:
        out: Json = {}
        if translated is not None and translated.name:
            out["name"] = f"{name}.{translated.name}"
        elif name:
            out["name"] = name
        out["match"] = {"prefix": "/"} if translated is None else translated.envoy
        if translated is not None and translated.stat_prefix:
            out["stat_prefix"] = translated.stat_prefix
        out.update(copy.deepcopy(template))
        out["decorator"] = {"operation": _operation(out, source)}
        routes.append(out)
    return routes


def _action(
    report: Report,
    route: Mapping[str, Any],
    path: str,
    *,
    source: Source,
    out: Json,
    route_headers: headers.Operations,
) -> Json:
    action: Json = {"timeout": fields.get_duration(report, route, "timeout", path) or "0s"}
    destinations = fields.get_list(report, route, "route", path) or []
    weighted: list[Json] = []
    authority = route_headers.authority
    for index, entry in enumerate(destinations):
        here = f"{path}.route[{index}]"
        found = fields.mapping(report, entry, here)
        if found is None:
            continue
        fields.check_keys(report, found, here, supported={"destination", "weight", "headers"})
        # Relative weights, Istio's int32: any total but 0 (the controller writes 90/90/20).
        weight = fields.get_int(report, found, "weight", here, maximum=2**31 - 1)
        target = fields.get_map(report, found, "destination", here)
        if target is None:
            report.invalid(f"{here}.destination", "missing")
        cluster = None if target is None else source.resolve(report, target, f"{here}.destination")
        ops = headers.operations(report, found, here)
        if len(destinations) == 1:
            action["cluster"] = cluster or ""
            ops.apply_to(out)
            # The route's own authority wins over the destination's, as in istiod.
            authority = authority or ops.authority
        elif weight:
            cluster_weight: Json = {"name": cluster or "", "weight": weight}
            ops.apply_to(cluster_weight)
            if ops.authority:
                cluster_weight["host_rewrite_literal"] = ops.authority
            weighted.append(cluster_weight)
        # istiod drops zero-weight destinations when there are others (their headers with them).
    if len(destinations) > 1:
        if not weighted:
            report.invalid(f"{path}.route", "every destination has weight 0")
        action["weighted_clusters"] = {"clusters": weighted}
    if authority:
        action["host_rewrite_literal"] = authority
    # A rewrite's authority replaces one set through headers.
    _apply_rewrite(report, route, path, action)
    mirrors = _mirrors(report, route, path, source)
    if mirrors:
        action["request_mirror_policies"] = mirrors
    retry = failure.retry_policy(report, route, path)
    if retry is not None:
        action["retry_policy"] = retry
    return action


def _apply_rewrite(report: Report, route: Mapping[str, Any], path: str, action: Json) -> None:
    rewrite = fields.get_map(report, route, "rewrite", path)
    if rewrite is None:
        return
    here = f"{path}.rewrite"
    fields.check_keys(report, rewrite, here, supported={"uri", "authority", "uriRegexRewrite"})
    regex = fields.get_map(report, rewrite, "uriRegexRewrite", here)
    uri = fields.get_str(report, rewrite, "uri", here)
    if regex is not None:
        fields.check_keys(report, regex, f"{here}.uriRegexRewrite", supported={"match", "rewrite"})
        action["regex_rewrite"] = {
            "pattern": {
                "regex": fields.get_str(report, regex, "match", f"{here}.uriRegexRewrite") or ""
            },
            "substitution": fields.get_str(report, regex, "rewrite", f"{here}.uriRegexRewrite")
            or "",
        }
    elif uri:
        action["prefix_rewrite"] = uri
    authority = fields.get_str(report, rewrite, "authority", here)
    if authority:
        action["host_rewrite_literal"] = authority


def _mirrors(report: Report, route: Mapping[str, Any], path: str, source: Source) -> list[Json]:
    out: list[Json] = []
    mirror = fields.get_map(report, route, "mirror", path)
    percentage = fields.get_percent(report, route, "mirrorPercentage", path)
    if mirror is not None:
        cluster = source.resolve(report, mirror, f"{path}.mirror")
        if cluster and (percentage is None or percentage["numerator"] > 0):
            out.append(_mirror_policy(cluster, percentage or fields.hundredths(100)))
    elif percentage is not None:
        report.invalid(f"{path}.mirrorPercentage", "set without a mirror")
    for index, entry in enumerate(fields.get_list(report, route, "mirrors", path) or []):
        here = f"{path}.mirrors[{index}]"
        found = fields.mapping(report, entry, here)
        if found is None:
            continue
        fields.check_keys(report, found, here, supported={"destination", "percentage"})
        share = fields.get_percent(report, found, "percentage", here)
        target = fields.get_map(report, found, "destination", here)
        cluster = None if target is None else source.resolve(report, target, f"{here}.destination")
        if cluster and (share is None or share["numerator"] > 0):
            out.append(_mirror_policy(cluster, share or fields.hundredths(100)))
    return out


def _mirror_policy(cluster: str, share: Json) -> Json:
    return {
        "cluster": cluster,
        "runtime_fraction": {"default_value": share},
        "trace_sampled": False,
    }


def _operation(route: Json, source: Source) -> str:
    """istiod's decorator operation: "host:port/path" for one cluster, else "vs-name:port/path"."""
    found = route["match"]
    path = "/*"
    if "prefix" in found:
        path = found["prefix"] + "*"
    elif "path" in found:
        path = found["path"]
    elif "safe_regex" in found:
        path = found["safe_regex"]["regex"]
    cluster = route.get("route", {}).get("cluster", "")
    parts = cluster.split("|")
    if len(parts) == 4:
        return f"{parts[3]}:{parts[1]}{path}"
    return f"{source.name}:{source.client.port}{path}"
