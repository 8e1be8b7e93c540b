"""Whether Envoy serves a split: the weighted clusters in its config_dump, read from its admin.

This is the "applied" signal wherever the controller can reach the proxies' admin ports (the
local mesh's Envoy in tests, a gateway in a cluster): it does not trust that a write to the API
server reached the data plane, it looks. Istio names a subset's cluster
`outbound|<port>|<subset>|<fqdn>` and an Envoy route after the VirtualService http route, so the
managed route's split can be found without knowing anything else about the config: an http
route `primary` becomes the Envoy route `primary`, or `primary.<match>` for each named match
block. A weight of 0 means no traffic (istiod and the local Pilot leave it out), a lone
destination is a plain `cluster`, and weights are relative: a split is served when each subset's
share of the route's total is the wanted share of the wanted total (Envoy's 180/20 serves 90/10),
the weights of several clusters of one subset (the stable subset on two ports) added up.

A named route is served only when every Envoy route of that name to the service holds the split:
a gateway with two servers has it in two route configurations, which Envoy updates one at a
time. A route that sends part of its traffic to a cluster of another service is no split of
this one. Held to captured dumps of both control planes by tests/unit/adapters/test_envoy_admin.py.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from canary.api import istio
from canary.errors import Unavailable

Json = dict[str, Any]


class EnvoyPropagation:
    def __init__(self, admin_urls: Sequence[str], *, timeout: float = 2.0) -> None:
        self.admin_urls = [url.rstrip("/") for url in admin_urls]
        self.timeout = timeout

    def serves(
        self, namespace: str, host: str, route: str | None, weights: Mapping[str, int]
    ) -> bool:
        fqdn = istio.fqdn(host, namespace)
        for url in self.admin_urls:
            dump = self._route_configs(url)
            if dump is None or not served_by(dump, fqdn, route, weights):
                return False
        return True

    def _route_configs(self, url: str) -> Json | None:
        try:
            with urllib.request.urlopen(
                f"{url}/config_dump?resource=dynamic_route_configs", timeout=self.timeout
            ) as response:
                loaded = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            # An Envoy we cannot read does not serve anything we can vouch for.
            return None
        return loaded if isinstance(loaded, dict) else None


class EnvoyAdmin:
    """The callers' proxies preflight may ask (the `Proxies` port): the routes each serves, and
    the stats it exports (`/stats?filter=`, Envoy's RE2 search over the stat names, which shows
    every stat Istio's proxyStatsMatcher kept, used or not)."""

    def __init__(self, admin_urls: Sequence[str], *, timeout: float = 2.0) -> None:
        self.admin_urls = tuple(url.rstrip("/") for url in admin_urls)
        self.timeout = timeout

    def addresses(self) -> tuple[str, ...]:
        return self.admin_urls

    def splits(
        self, address: str, namespace: str, host: str, route: str | None
    ) -> tuple[Mapping[str, int], ...]:
        try:
            loaded = json.loads(self._get(address, "/config_dump?resource=dynamic_route_configs"))
        except ValueError as exc:
            raise Unavailable(f"{address}: config_dump is not JSON") from exc
        if not isinstance(loaded, dict):
            raise Unavailable(f"{address}: config_dump is not a JSON object")
        return tuple(served_splits(loaded, istio.fqdn(host, namespace), route))

    def stat_names(self, address: str, pattern: str) -> frozenset[str]:
        text = self._get(address, f"/stats?filter={urllib.parse.quote(pattern)}")
        return frozenset(line.split(":", 1)[0].strip() for line in text.splitlines() if ":" in line)

    def _get(self, address: str, path: str) -> str:
        try:
            with urllib.request.urlopen(f"{address}{path}", timeout=self.timeout) as response:
                body: bytes = response.read(64 * 1024 * 1024)
        except (urllib.error.URLError, OSError) as exc:
            raise Unavailable(f"Envoy admin {address}: {exc}") from exc
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Unavailable(f"Envoy admin {address}: the answer is not UTF-8") from exc


def served_by(dump: Json, fqdn: str, route_name: str | None, weights: Mapping[str, int]) -> bool:
    """Whether the dump serves `weights` (relative; zero weights left out) on the managed route:
    on every Envoy route of its name to `fqdn`, or, with no name, on some route to `fqdn`."""
    wanted = {subset: weight for subset, weight in weights.items() if weight > 0}
    found = list(_route_splits(dump, fqdn, route_name))
    if route_name is None:
        return any(_same_shares(split, wanted) for split in found)
    return bool(found) and all(_same_shares(split, wanted) for split in found)


def _same_shares(split: dict[str, int] | None, wanted: Mapping[str, int]) -> bool:
    """Whether both give each subset the same share of their total; exact, in whole numbers."""
    if split is None or split.keys() != wanted.keys() or not wanted:
        return False
    split_total, wanted_total = sum(split.values()), sum(wanted.values())
    return all(split[subset] * wanted_total == wanted[subset] * split_total for subset in wanted)


def served_splits(dump: Json, fqdn: str, route_name: str | None) -> Iterator[dict[str, int]]:
    """The split (subset -> weight) of every Envoy route to `fqdn` named like the http route
    (every route to `fqdn` when `route_name` is None), leaving out those it cannot read."""
    for split in _route_splits(dump, fqdn, route_name):
        if split:
            yield split


def _route_splits(dump: Json, fqdn: str, route_name: str | None) -> Iterator[dict[str, int] | None]:
    """Each named route with a cluster of `fqdn`: its split, or None when part of it goes to a
    cluster of something else."""
    for config in dump.get("configs") or []:
        if not isinstance(config, dict):
            continue
        for host in (config.get("route_config") or {}).get("virtual_hosts") or []:
            for route in host.get("routes") or []:
                if _named(str(route.get("name") or ""), route_name):
                    yield from _split(route.get("route") or {}, fqdn)


def _named(name: str, route_name: str | None) -> bool:
    if route_name is None:
        return True
    # `<route>.<match>` for a named match block; a route's own name may hold dots too.
    return name == route_name or name.startswith(f"{route_name}.")


def _split(action: Json, fqdn: str) -> Iterator[dict[str, int] | None]:
    """Nothing when the route sends nothing to `fqdn`."""
    if "cluster" in action:
        clusters = [(str(action["cluster"]), 100)]
    else:
        clusters = [
            (str(cluster.get("name") or ""), int(cluster.get("weight") or 0))
            for cluster in (action.get("weighted_clusters") or {}).get("clusters") or []
        ]
    subsets = [(_subset_of(name, fqdn), weight) for name, weight in clusters]
    if all(subset is None for subset, _ in subsets):
        return
    split: dict[str, int] = {}
    for subset, weight in subsets:
        if subset is None:
            yield None
            return
        if weight > 0:
            split[subset] = split.get(subset, 0) + weight
    yield split


def _subset_of(cluster: str, fqdn: str) -> str | None:
    parts = cluster.split("|")
    if len(parts) != 4 or parts[0] != "outbound" or parts[3] != fqdn:
        return None
    return parts[2]
