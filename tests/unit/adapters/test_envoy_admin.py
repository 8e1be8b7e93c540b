"""The envoy_admin reader against config_dumps captured from real Envoys (tests/data/config_dumps/,
fed by the local Pilot and by istiod as a gateway and as a sidecar).

The end-to-end tests decide by requests counted per version; this holds the reader itself to
what Envoy really says. A case the captures do not hold (a foreign cluster in a split, weights
not summing to 100) is made by one stated edit of a captured dump, never from scratch.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from canary.adapters import envoy_admin
from canary.localmesh import procs

Json = dict[str, Any]

DUMPS = Path(__file__).resolve().parents[2] / "data" / "config_dumps"
NAMESPACE = "capture"
FQDN = "demo.capture.svc.cluster.local"
SOURCES = ("local-pilot", "istiod-gateway", "istiod-sidecar")


def dump(name: str) -> Json:
    loaded: Json = json.loads((DUMPS / f"{name}.json").read_text())
    return loaded


def splits(found: Json, route: str | None = "primary", fqdn: str = FQDN) -> list[dict[str, int]]:
    return list(envoy_admin.served_splits(found, fqdn, route))


def primary(found: Json) -> Json:
    """The Envoy route named `primary` in a captured dump (exactly one), to edit in place."""
    routes = [
        route
        for config in found["configs"]
        for host in config["route_config"]["virtual_hosts"]
        for route in host["routes"]
        if route.get("name") == "primary"
    ]
    assert len(routes) == 1, routes
    return routes[0]


def test_the_captures_are_what_their_names_say() -> None:
    """Each capture is a route dump with the primary route in it; a broken re-capture fails here."""
    for source in SOURCES:
        for split in ("90-10", "100-0"):
            found = dump(f"{source}-{split}")
            assert {c["@type"].rsplit(".", 1)[1] for c in found["configs"]} == {
                "DynamicRouteConfig"
            }
            assert primary(found)["route"]["weighted_clusters"]["clusters"]
    versions = json.loads((DUMPS / "versions.json").read_text())
    assert versions["envoy"], versions
    assert versions["istiod"], versions


@pytest.mark.parametrize("source", SOURCES)
def test_weights_are_read_as_envoy_holds_them(source: str) -> None:
    assert splits(dump(f"{source}-90-10")) == [{"v1": 90, "v2": 10}]
    # Both control planes leave a weight of 0 out: one cluster of weight 100 is left.
    assert splits(dump(f"{source}-100-0")) == [{"v1": 100}]


@pytest.mark.parametrize("source", SOURCES)
def test_a_route_with_named_match_blocks_is_found_by_its_http_route_name(source: str) -> None:
    """istiod and the local Pilot name Envoy's routes `<route>.<match>`: both blocks are read."""
    found = dump(f"{source}-90-10")
    assert splits(found, "canary-header") == [{"v2": 100}, {"v2": 100}]
    # Without a route name, every route to the host counts, in Envoy's order.
    assert splits(found, None) == [{"v2": 100}, {"v2": 100}, {"v1": 90, "v2": 10}]


@pytest.mark.parametrize("route", ["secondary", "canary", "prim", "by-header", "primary2", ""])
def test_a_route_named_differently_is_not_the_managed_one(route: str) -> None:
    for source in SOURCES:
        assert splits(dump(f"{source}-90-10"), route) == [], (source, route)


def test_a_route_name_with_a_dot_is_found_whole() -> None:
    """An http route may be named `primary.v2`; Envoy then has a route of that very name."""
    found = dump("istiod-gateway-90-10")
    primary(found)["name"] = "primary.v2"
    assert splits(found, "primary.v2") == [{"v1": 90, "v2": 10}]


def test_a_missing_route_is_no_split() -> None:
    """Before the VirtualService reaches Envoy there is only the default route, to no subset."""
    before = dump("local-pilot-no-push")
    assert splits(before) == []
    assert splits(before, None) == [{"": 100}]
    assert splits(dump("local-pilot-90-10"), fqdn="demo.other.svc.cluster.local") == []
    assert splits(dump("local-pilot-90-10"), fqdn="demo") == []


def test_a_dump_without_the_dynamic_route_config_is_no_split() -> None:
    assert splits(dump("local-pilot-clusters-only")) == []
    assert splits(dump("local-pilot-clusters-only"), None) == []
    assert splits({}) == []
    assert splits({"configs": [{}]}) == []
    assert splits({"configs": None}) == []


@pytest.mark.parametrize(
    "cluster",
    [
        "outbound|80|v2|reviews.capture.svc.cluster.local",  # another service
        "outbound|80|v2|demo.other.svc.cluster.local",  # the same name in another namespace
        "inbound|80||demo.capture.svc.cluster.local",
        "BlackHoleCluster",
        "",
    ],
)
def test_a_split_with_a_cluster_not_of_this_service_is_not_read(cluster: str) -> None:
    """Part of the traffic going elsewhere is not a split of this service's subsets."""
    found = dump("istiod-sidecar-90-10")
    primary(found)["route"]["weighted_clusters"]["clusters"][1]["name"] = cluster
    assert splits(found) == []
    assert not envoy_admin.served_by(found, FQDN, "primary", {"v1": 90, "v2": 10})


def test_weights_are_relative_as_in_envoy() -> None:
    """Envoy splits by each weight's share of the total: 45/5 serves what the VirtualService's
    180/20 or 90/10 says, and nothing else."""
    found = dump("local-pilot-90-10")
    clusters = primary(found)["route"]["weighted_clusters"]["clusters"]
    clusters[0]["weight"], clusters[1]["weight"] = 45, 5
    assert splits(found) == [{"v1": 45, "v2": 5}]
    assert envoy_admin.served_by(found, FQDN, "primary", {"v1": 90, "v2": 10})
    assert envoy_admin.served_by(found, FQDN, "primary", {"v1": 180, "v2": 20})
    assert not envoy_admin.served_by(found, FQDN, "primary", {"v1": 89, "v2": 11})
    assert not envoy_admin.served_by(found, FQDN, "primary", {"v1": 180, "v2": 19})


@pytest.mark.parametrize("source", SOURCES)
def test_the_stable_subset_on_two_clusters_is_one_share(source: str) -> None:
    """The stable subset in two destinations (two ports) is two clusters of one subset: their
    weights add up, 90/90/20 is 90% stable."""
    found = dump(f"{source}-90-10")
    clusters = primary(found)["route"]["weighted_clusters"]["clusters"]
    stable = next(cluster for cluster in clusters if "|v1|" in cluster["name"])
    _, _, subset, host = stable["name"].split("|")
    clusters.append({**stable, "name": f"outbound|9081|{subset}|{host}"})
    for cluster in clusters:
        cluster["weight"] = 20 if "|v2|" in cluster["name"] else 90
    assert splits(found) == [{"v1": 180, "v2": 20}]
    assert envoy_admin.served_by(found, FQDN, "primary", {"v1": 180, "v2": 20})
    assert envoy_admin.served_by(found, FQDN, "primary", {"v1": 90, "v2": 10})
    assert not envoy_admin.served_by(found, FQDN, "primary", {"v1": 90, "v2": 20})


def test_a_zero_weight_left_in_a_split_is_no_traffic() -> None:
    """A control plane that kept a 0-weight cluster still serves 100/0."""
    found = dump("istiod-gateway-100-0")
    clusters = primary(found)["route"]["weighted_clusters"]["clusters"]
    clusters.append(
        {**clusters[0], "name": clusters[0]["name"].replace("|v1|", "|v2|"), "weight": 0}
    )
    assert splits(found) == [{"v1": 100}]
    assert envoy_admin.served_by(found, FQDN, "primary", {"v1": 100, "v2": 0})


def test_every_route_of_the_name_must_serve_the_split() -> None:
    """A gateway with two servers holds the route in two route configurations, updated one at a
    time: while one still has the old split, the new one is not served yet."""
    new, old = dump("istiod-gateway-90-10"), dump("istiod-gateway-100-0")
    mixed = {"configs": new["configs"] + copy.deepcopy(old["configs"])}
    assert splits(mixed) == [{"v1": 90, "v2": 10}, {"v1": 100}]
    assert not envoy_admin.served_by(mixed, FQDN, "primary", {"v1": 90, "v2": 10})
    assert not envoy_admin.served_by(mixed, FQDN, "primary", {"v1": 100, "v2": 0})
    both = {"configs": new["configs"] + copy.deepcopy(new["configs"])}
    assert envoy_admin.served_by(both, FQDN, "primary", {"v1": 90, "v2": 10})


@pytest.mark.parametrize("source", SOURCES)
def test_served_by_says_which_split_is_live(source: str) -> None:
    ninety = dump(f"{source}-90-10")
    assert envoy_admin.served_by(ninety, FQDN, "primary", {"v1": 90, "v2": 10})
    assert not envoy_admin.served_by(ninety, FQDN, "primary", {"v1": 10, "v2": 90})
    assert not envoy_admin.served_by(ninety, FQDN, "primary", {"v1": 100, "v2": 0})
    assert not envoy_admin.served_by(ninety, FQDN, "primary", {"v1": 90, "v3": 10})
    assert not envoy_admin.served_by(ninety, FQDN, "secondary", {"v1": 90, "v2": 10})
    hundred = dump(f"{source}-100-0")
    assert envoy_admin.served_by(hundred, FQDN, "primary", {"v1": 100, "v2": 0})
    assert envoy_admin.served_by(hundred, FQDN, "primary", {"v1": 100})
    assert not envoy_admin.served_by(hundred, FQDN, "primary", {"v1": 90, "v2": 10})


# --- EnvoyPropagation over HTTP, against an admin that answers with a captured dump


class _Admin:
    """A loopback HTTP server answering `/config_dump` with `body` (settable)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.paths: list[str] = []
        admin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                admin.paths.append(self.path)
                self.send_response(200)
                self.send_header("content-length", str(len(admin.body)))
                self.end_headers()
                self.wfile.write(admin.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def admins() -> Iterator[list[_Admin]]:
    started = [_Admin((DUMPS / "istiod-gateway-90-10.json").read_bytes()) for _ in range(2)]
    yield started
    for admin in started:
        admin.stop()


def test_serves_reads_every_admin_given(admins: list[_Admin]) -> None:
    wanted = {"v1": 90, "v2": 10}
    propagation = envoy_admin.EnvoyPropagation([a.url + "/" for a in admins], timeout=2)
    assert propagation.serves(NAMESPACE, "demo", "primary", wanted)
    assert admins[0].paths == ["/config_dump?resource=dynamic_route_configs"]
    # One proxy still on the old split: the split is not served yet.
    admins[1].body = (DUMPS / "istiod-gateway-100-0.json").read_bytes()
    assert not propagation.serves(NAMESPACE, "demo", "primary", wanted)
    assert propagation.serves(NAMESPACE, FQDN, "primary", {"v1": 100, "v2": 0}) is False
    admins[0].body = admins[1].body
    assert propagation.serves(NAMESPACE, FQDN, "primary", {"v1": 100, "v2": 0})


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"", b'"configs"'])
def test_an_admin_answer_that_is_not_a_dump_serves_nothing(
    admins: list[_Admin], body: bytes
) -> None:
    admins[0].body = body
    propagation = envoy_admin.EnvoyPropagation([admins[0].url])
    assert not propagation.serves(NAMESPACE, "demo", "primary", {"v1": 90, "v2": 10})


def test_an_admin_that_does_not_answer_serves_nothing() -> None:
    closed = procs.free_port()
    propagation = envoy_admin.EnvoyPropagation([f"http://127.0.0.1:{closed}"], timeout=0.5)
    assert not propagation.serves(NAMESPACE, "demo", "primary", {"v1": 100})
