"""Whether Envoy serves a split: the weighted clusters in its config_dump, read from its admin.

This is the "applied" signal wherever the controller can reach the proxies' admin ports (the
local mesh's Envoy in tests, a gateway in a cluster): it does not trust that a write to the API
server reached the data plane, it looks. Istio names a subset's cluster
`outbound|<port>|<subset>|<fqdn>` and an Envoy route after the VirtualService http route, so the
managed route's split can be found without knowing anything else about the config. A weight of
0 is left out of Envoy's config, and a lone destination is a plain `cluster`, not a weighted one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from canary.api import istio

Json = dict[str, Any]


class EnvoyPropagation:
    def __init__(self, admin_urls: Sequence[str], *, timeout: float = 2.0) -> None:
        self.admin_urls = [url.rstrip("/") for url in admin_urls]
        self.timeout = timeout

    def serves(
        self, namespace: str, host: str, route: str | None, weights: Mapping[str, int]
    ) -> bool:
        wanted = {subset: weight for subset, weight in weights.items() if weight > 0}
        fqdn = istio.fqdn(host, namespace)
        for url in self.admin_urls:
            dump = self._route_configs(url)
            if dump is None:
                return False
            splits = list(served_splits(dump, fqdn, route))
            if wanted not in splits:
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


def served_splits(dump: Json, fqdn: str, route_name: str | None) -> Iterator[dict[str, int]]:
    """The split (subset -> weight) of every Envoy route to `fqdn` named like the http route."""
    for config in dump.get("configs") or []:
        for host in (config.get("route_config") or {}).get("virtual_hosts") or []:
            for route in host.get("routes") or []:
                name = str(route.get("name") or "")
                if route_name is not None and name.split(".", maxsplit=1)[0] != route_name:
                    continue
                split = _split(route.get("route") or {}, fqdn)
                if split:
                    yield split


def _split(action: Json, fqdn: str) -> dict[str, int]:
    if "cluster" in action:
        subset = _subset_of(str(action["cluster"]), fqdn)
        return {} if subset is None else {subset: 100}
    split: dict[str, int] = {}
    for cluster in (action.get("weighted_clusters") or {}).get("clusters") or []:
        subset = _subset_of(str(cluster.get("name") or ""), fqdn)
        if subset is None:
            return {}
        split[subset] = split.get(subset, 0) + int(cluster.get("weight") or 0)
    return split


def _subset_of(cluster: str, fqdn: str) -> str | None:
    parts = cluster.split("|")
    if len(parts) != 4 or parts[0] != "outbound" or parts[3] != fqdn:
        return None
    return parts[2]
