"""Gateway + VirtualService as an ingress gateway Envoy's config, the way istiod builds a router's.

Which VirtualServices a gateway serves, by istiod's rules (`pilot/pkg/model` and
`networking/core/gateway.go`):
- a VirtualService binds to the Gateways its `gateways` names: `name` is the Gateway of that name
  in the VirtualService's own namespace, `ns/name` the one in `ns` (`mesh` is the sidecars';
  without `gateways` a VirtualService is the sidecars' alone, never a gateway's);
- of a bound VirtualService's hosts, a server serves those its own hosts allow (`*`,
  `*.example.com`, `ns/host` for that namespace only): the more specific of each pair that
  overlaps, as istiod's host intersection gives it.

What it builds, named as istiod names it so a config dump reads the same: per HTTP server port
one route configuration `http.<port>`; per HTTPS server one `https.<port>.<port name>.<gateway>.
<namespace>`; one virtual host per served host, `<host>:<port>` with the host as its one domain;
a route configuration with nothing to serve gets istiod's `blackhole:<port>` (404 for all).
Listeners are `0.0.0.0_<port>`-style names on the loopback port the mesh gave that server port
(a Service port in a cluster, a targetPort here), with istiod's stat prefix
`outbound_0.0.0.0_<listen port>`, so `http.outbound_0.0.0.0_<port>.downstream_rq_*` and the
HTTPS listener's `listener.127.0.0.1_<port>.ssl.handshake` count what the gateway served. An
HTTPS server's filter chain matches its hosts by SNI (none for `*`) and terminates TLS with the
certificate the mesh's `Credentials` gives for its credentialName and hosts.

Two VirtualServices for one host on one gateway port are refused, as for the sidecar (istiod
merges their routes, in an order a user cannot see).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.localmesh.pilot import clusters, fields, http, match, routes, servers
from canary.localmesh.pilot.fields import Json
from canary.localmesh.pilot.model import (
    FAULT_FILTER,
    FAULT_TYPE,
    ROUTE_TYPE,
    TranslationError,
    Workload,
)
from canary.localmesh.pilot.translate import open_object, read_rules, resolver, services_of

# (credentialName, the server's hosts) -> (certificate chain, private key) files.
Credentials = Callable[[str, tuple[str, ...]], tuple[Path, Path]]

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
_HCM = "envoy.filters.network.http_connection_manager"
_TYPES = "type.googleapis.com/envoy.extensions"
_HCM_TYPE = f"{_TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER_TYPE = f"{_TYPES}.filters.http.router.v3.Router"
_TLS_TYPE = f"{_TYPES}.transport_sockets.tls.v3.DownstreamTlsContext"
# istiod's route.DefaultMaxDirectResponseBodySizeBytes
_MAX_DIRECT_RESPONSE_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Listen:
    """Where the gateway Envoy listens for one server port number, and whether it is HTTPS."""

    port: int
    https: bool


@dataclass(frozen=True, slots=True)
class GatewayResources:
    listeners: list[Json]
    route_configurations: list[Json]
    clusters: list[Json]


def translate_gateway(
    gateways: Sequence[Mapping[str, Any]],
    virtual_services: Sequence[Mapping[str, Any]],
    destination_rules: Sequence[Mapping[str, Any]],
    workloads: Sequence[Workload],
    *,
    labels: Mapping[str, str],
    listen: Mapping[int, Listen],
    credentials: Credentials,
    service_port: int = 80,
    rds_source: Callable[[str], Json],
) -> GatewayResources:
    """The gateway Envoy's listeners, routes and clusters; `rds_source` gives the ConfigSource
    a route configuration (by name) comes from. Raises TranslationError listing every problem."""
    problems: list[str] = []
    by_gateway = servers.read(
        gateways,
        labels=labels,
        ports={number: where.https for number, where in listen.items()},
        problems=problems,
    )
    services = services_of(workloads)
    # The gateway reads DestinationRules as a proxy in its namespace would; the mesh's rules are
    # exported everywhere or to the service's namespace, which the sidecar check already holds.
    rules = read_rules(destination_rules, services, _client("", service_port), [])
    hosts: dict[str, dict[str, Json]] = {}  # route name -> host -> virtual host
    owners: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for body in virtual_services:
        if not _gateway_names(body):
            continue
        _bind(
            body,
            by_gateway=by_gateway,
            services=services,
            rules=rules,
            service_port=service_port,
            hosts=hosts,
            owners=owners,
            used=used,
            problems=problems,
        )
    if problems:
        # A VirtualService bound to two servers is read twice; say each problem once.
        raise TranslationError(tuple(dict.fromkeys(problems)))
    all_servers = [server for found in by_gateway.values() for server in found]
    configurations = _route_configurations(all_servers, hosts)
    return GatewayResources(
        listeners=_listeners(all_servers, listen, credentials, rds_source),
        route_configurations=configurations,
        clusters=[
            cluster
            for fqdn in sorted(services)
            if fqdn in used
            for cluster in clusters.service_clusters(
                fqdn, port=service_port, workloads=services[fqdn], rule=rules.get(fqdn)
            )
        ],
    )


def unserved(virtual_services: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems for a mesh without a gateway: VirtualServices bound to gateways only, which no
    Envoy here would serve (weights written there would never move traffic)."""
    found = []
    for body in virtual_services:
        if _gateway_names(body) and not routes.for_mesh(body):
            meta = body.get("metadata") or {}
            found.append(
                f"VirtualService {meta.get('namespace')}/{meta.get('name')} spec.gateways: not "
                "supported by the local mesh (it runs no ingress gateway; start it with one)"
            )
    return found


def _gateway_names(body: Mapping[str, Any]) -> list[str]:
    spec = body.get("spec")
    names = spec.get("gateways") if isinstance(spec, Mapping) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def resolve_gateway(name: str, namespace: str) -> str:
    """istiod's resolveGatewayName: `name`, `./name`, `ns/name` and the legacy `name.ns...`."""
    owner, slash, rest = name.partition("/")
    if slash:
        return f"{namespace}/{rest}" if owner == "." else name
    if "." in name:
        short, _, domain = name.partition(".")
        return f"{domain.split('.')[0]}/{short}"
    return f"{namespace}/{name}"


def _bind(
    body: Mapping[str, Any],
    *,
    by_gateway: Mapping[str, list[servers.Server]],
    services: Mapping[str, list[Workload]],
    rules: Mapping[str, clusters.Rule],
    service_port: int,
    hosts: dict[str, dict[str, Json]],
    owners: dict[tuple[str, str], str],
    used: set[str],
    problems: list[str],
) -> None:
    meta = body.get("metadata")
    namespace = str((meta.get("namespace") if isinstance(meta, Mapping) else None) or "default")
    bound: list[servers.Server] = []
    envelope = None
    for index, name in enumerate(_gateway_names(body)):
        if name == "mesh":
            continue
        key = resolve_gateway(name, namespace)
        found = by_gateway.get(key)
        if envelope is None:
            # Seen from the first bound Gateway's namespace, for exportTo.
            envelope = open_object(
                body, "VirtualService", _client(key.split("/", maxsplit=1)[0], 0), problems
            )
            if envelope is None:
                return
        if found is None:
            envelope.report.invalid(f"spec.gateways[{index}]", f"Gateway {key} not found")
            continue
        bound.extend(found)
    if envelope is None:
        return
    report, spec = envelope.report, envelope.spec
    written = fields.get_strings(report, spec, "hosts", "spec") or []
    if not written:
        report.refuse("spec.hosts", "none given; delegate VirtualServices are not implemented")
    resolve = resolver(services, rules, namespace, service_port)
    for server in bound:
        served = intersection(server.hosts_for(namespace), written)
        if not served:
            continue
        source = http.Source(
            name=envelope.name,
            config=envelope.config,
            client=_client(server.gateway.split("/")[0], server.number),
            resolve=_recording(resolve, used),
        )
        read = routes.read_routes(report, spec, source=source)
        for host in served:
            owner = owners.setdefault((server.route_name, host), report.subject)
            if owner != report.subject:
                report.refuse(
                    "spec.hosts", f"{host} on {server.route_name} is already routed by {owner}"
                )
                continue
            hosts.setdefault(server.route_name, {})[host] = {
                "name": f"{host}:{server.number}",
                "domains": [host],
                "routes": copy.deepcopy(read),
                "include_request_attempt_count": True,
            }


def _recording(resolve: http.Resolve, used: set[str]) -> http.Resolve:
    """The resolver, noting each service a gateway route sends to (it needs their clusters)."""

    def recorded(report: fields.Report, destination: Mapping[str, Any], path: str) -> str | None:
        cluster = resolve(report, destination, path)
        if cluster is not None:
            used.add(cluster.split("|")[3])
        return cluster

    return recorded


def intersection(server_hosts: Sequence[str], vs_hosts: Sequence[str]) -> list[str]:
    """istiod's host.Names.Intersection: of each overlapping pair, the more specific host."""
    found: list[str] = []
    for offered in server_hosts:
        for wanted in vs_hosts:
            for host in (offered, wanted):
                other = wanted if host is offered else offered
                if _subset_of(host, other) and host.lower() not in found:
                    found.append(host.lower())
                    break
    return found


def _subset_of(host: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _client(namespace: str, port: int) -> match.Client:
    return match.Client(namespace=namespace, port=port)


def _route_configurations(
    all_servers: Sequence[servers.Server], hosts: Mapping[str, Mapping[str, Json]]
) -> list[Json]:
    configurations: dict[str, Json] = {}
    for server in all_servers:
        if server.route_name in configurations:
            continue
        served = hosts.get(server.route_name) or {}
        virtual_hosts = [served[host] for host in sorted(served)] or [
            {"name": f"blackhole:{server.number}", "domains": ["*"]}
        ]
        configurations[server.route_name] = {
            "@type": ROUTE_TYPE,
            "name": server.route_name,
            "virtual_hosts": virtual_hosts,
            "validate_clusters": False,
            "ignore_port_in_host_matching": True,
            "max_direct_response_body_size_bytes": _MAX_DIRECT_RESPONSE_BODY,
        }
    return [configurations[name] for name in sorted(configurations)]


def _listeners(
    all_servers: Sequence[servers.Server],
    listen: Mapping[int, Listen],
    credentials: Credentials,
    rds_source: Callable[[str], Json],
) -> list[Json]:
    by_port: dict[int, list[servers.Server]] = {}
    for server in all_servers:
        by_port.setdefault(server.number, []).append(server)
    listeners = []
    for number in sorted(by_port):
        where = listen[number]
        chains: list[Json] = []
        names: set[str] = set()
        for server in by_port[number]:
            if server.route_name in names:
                continue  # HTTP servers on one port share one route configuration and chain
            names.add(server.route_name)
            chains.append(_chain(server, where.port, credentials, rds_source))
        listeners.append(
            {
                "@type": LISTENER_TYPE,
                "name": f"0.0.0.0_{where.port}",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": where.port}},
                "filter_chains": chains,
                # The TLS inspector reads the SNI that picks an HTTPS server's chain.
                **(
                    {
                        "listener_filters": [
                            {
                                "name": "envoy.filters.listener.tls_inspector",
                                "typed_config": {
                                    "@type": f"{_TYPES}.filters.listener.tls_inspector.v3"
                                    ".TlsInspector"
                                },
                            }
                        ]
                    }
                    if where.https
                    else {}
                ),
            }
        )
    return listeners


def _chain(
    server: servers.Server,
    listen_port: int,
    credentials: Credentials,
    rds_source: Callable[[str], Json],
) -> Json:
    manager = {
        "@type": _HCM_TYPE,
        "stat_prefix": f"outbound_0.0.0.0_{listen_port}",
        "rds": {
            "config_source": rds_source(server.route_name),
            "route_config_name": server.route_name,
        },
        # The edge: the client's address is the downstream's, as istiod sets for gateways.
        "use_remote_address": True,
        "http_filters": [
            {"name": FAULT_FILTER, "typed_config": {"@type": FAULT_TYPE}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_TYPE}},
        ],
    }
    chain: Json = {"filters": [{"name": _HCM, "typed_config": manager}]}
    if server.https:
        plain = tuple(host.rpartition("/")[2] for host in server.hosts)
        chain_file, key_file = credentials(server.credential, plain)
        if "*" not in plain:
            chain["filter_chain_match"] = {"server_names": sorted(set(plain))}
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": _TLS_TYPE,
                "common_tls_context": {
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": str(chain_file)},
                            "private_key": {"filename": str(key_file)},
                        }
                    ],
                },
            },
        }
    return chain
