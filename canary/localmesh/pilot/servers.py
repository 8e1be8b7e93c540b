"""Istio `Gateway` objects read into the servers one local ingress gateway Envoy can open.

A Gateway is for the gateway workloads its `selector` matches; the local mesh has one gateway
Envoy, so every Gateway it is given must select that Envoy's labels (a Gateway for some other
gateway would bind VirtualServices that nothing serves, and a rollout on them would be judged on
traffic that never moved). Each server becomes HTTP, or HTTPS terminated with a certificate:
`tls.mode: SIMPLE` with a `credentialName`, which in a cluster names a Secret and here names a
certificate the local CA issues for the server's hosts. Everything else a server can say
(passthrough, mutual TLS at the gateway, TCP and TLS servers, certificates from files, binding
an address) is refused by name.

Server hosts are kept as istiod keeps them after merging: `./host` becomes the Gateway's own
namespace, `*/host` the bare host, so each is either `host` (any namespace's VirtualService) or
`ns/host` (only that namespace's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canary.localmesh.pilot import fields, match
from canary.localmesh.pilot.fields import Report
from canary.localmesh.pilot.translate import open_object

_SPEC_KEYS = {"selector", "servers"}
_SERVER_KEYS = {"port", "hosts", "tls", "name"}
_SERVER_REFUSED = {
    "bind": "the local gateway binds its own loopback ports",
    "defaultEndpoint": "sidecar ingress listeners are not implemented",
}
_PORT_KEYS = {"number", "name", "protocol", "targetPort"}
_TLS_KEYS = {"mode", "credentialName"}
_TLS_REFUSED = {
    "httpsRedirect": "HTTPS redirects are not implemented",
    "serverCertificate": "certificates from files are not implemented; use credentialName",
    "privateKey": "certificates from files are not implemented; use credentialName",
    "caCertificates": "mutual TLS at the gateway is not implemented",
    "credentialNames": "one credentialName per server",
    "subjectAltNames": "mutual TLS at the gateway is not implemented",
    "verifyCertificateSpki": "mutual TLS at the gateway is not implemented",
    "verifyCertificateHash": "mutual TLS at the gateway is not implemented",
    "minProtocolVersion": "TLS versions are Envoy's defaults",
    "maxProtocolVersion": "TLS versions are Envoy's defaults",
    "cipherSuites": "cipher suites are Envoy's defaults",
}
_HTTP = {"HTTP", "HTTP2", "GRPC"}


@dataclass(frozen=True, slots=True)
class Server:
    """One server of one Gateway, as the gateway Envoy opens it."""

    gateway: str  # "namespace/name", the key VirtualServices bind to
    index: int
    number: int  # the server's port number: the Service port routes are named after
    port_name: str
    https: bool
    hosts: tuple[str, ...]
    credential: str = ""  # the credentialName of an HTTPS server

    @property
    def route_name(self) -> str:
        """istiod's RDS name: `http.<port>`, shared by every HTTP server on the port;
        `https.<port>.<port name>.<gateway>.<namespace>`, one per HTTPS server."""
        if not self.https:
            return f"http.{self.number}"
        namespace, name = self.gateway.split("/")
        return f"https.{self.number}.{self.port_name}.{name}.{namespace}"

    def hosts_for(self, namespace: str) -> list[str]:
        """The hosts this server offers to a VirtualService in `namespace`."""
        offered = []
        for host in self.hosts:
            owner, _, name = host.rpartition("/")
            if not owner or owner == namespace:
                offered.append(name)
        return offered


def read(
    bodies: Sequence[Mapping[str, Any]],
    *,
    labels: Mapping[str, str],
    ports: Mapping[int, bool],
    problems: list[str],
) -> dict[str, list[Server]]:
    """Each Gateway's servers by "namespace/name"; `labels` are the gateway Envoy's, `ports`
    the server port numbers it listens on (True: HTTPS)."""
    found: dict[str, list[Server]] = {}
    for body in bodies:
        # A Gateway is read from its own namespace, where exportTo does not apply.
        meta = body.get("metadata")
        namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
        client = match.Client(namespace=str(namespace or "default"), port=0)
        envelope = open_object(body, "Gateway", client, problems)
        if envelope is None:
            if "spec" in body and body["spec"] is None:
                problems.append(f"Gateway {client.namespace}/{_name(body)} spec: missing")
            continue
        key = f"{envelope.namespace}/{envelope.name}"
        found[key] = _servers(envelope.report, envelope.spec, key, labels, ports)
    return found


def _name(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata")
    return str(meta.get("name") if isinstance(meta, Mapping) else None)


def _servers(
    report: Report,
    spec: Mapping[str, Any],
    key: str,
    labels: Mapping[str, str],
    ports: Mapping[int, bool],
) -> list[Server]:
    fields.check_keys(report, spec, "spec", supported=_SPEC_KEYS | {"exportTo"})
    selector = fields.get_string_map(report, spec, "selector", "spec") or {}
    if any(labels.get(name) != value for name, value in selector.items()):
        wanted = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        report.refuse("spec.selector", f"the local mesh's one gateway has the labels {wanted}")
    servers: list[Server] = []
    entries = fields.get_list(report, spec, "servers", "spec")
    if entries == [] or spec.get("servers") is None:  # a wrong type was reported already
        report.invalid("spec.servers", "no servers")
    for index, entry in enumerate(entries or []):
        path = f"spec.servers[{index}]"
        written = fields.mapping(report, entry, path)
        if written is not None:
            server = _server(report, written, path, key=key, index=index, ports=ports)
            if server is not None:
                servers.append(server)
    return servers


def _server(
    report: Report,
    written: Mapping[str, Any],
    path: str,
    *,
    key: str,
    index: int,
    ports: Mapping[int, bool],
) -> Server | None:
    fields.check_keys(report, written, path, supported=_SERVER_KEYS, refused=_SERVER_REFUSED)
    port = fields.get_map(report, written, "port", path)
    if port is None:
        report.invalid(f"{path}.port", "missing")
        return None
    here = f"{path}.port"
    fields.check_keys(report, port, here, supported=_PORT_KEYS)
    number = fields.get_int(report, port, "number", here, minimum=1, maximum=65535)
    protocol = (fields.get_str(report, port, "protocol", here) or "").upper()
    port_name = fields.get_str(report, port, "name", here) or ""
    hosts = fields.get_strings(report, written, "hosts", path) or []
    if not written.get("hosts"):
        report.invalid(f"{path}.hosts", "a server needs at least one host")
    https = protocol == "HTTPS"
    if protocol not in _HTTP and not https:
        report.refuse(
            f"{here}.protocol",
            f"{protocol or 'no protocol'}; the local gateway serves HTTP and HTTPS",
        )
        return None
    tls = fields.get_map(report, written, "tls", path)
    credential = _credential(report, tls, f"{path}.tls", https=https)
    if number is None:
        return None
    if number not in ports or ports[number] != https:
        offered = ", ".join(f"{n} ({'HTTPS' if s else 'HTTP'})" for n, s in sorted(ports.items()))
        report.refuse(f"{here}.number", f"the local gateway listens on {offered}")
        return None
    if credential is None:
        return None
    namespace = key.split("/", maxsplit=1)[0]
    return Server(
        gateway=key,
        index=index,
        number=number,
        port_name=port_name,
        https=https,
        hosts=tuple(_sanitized(host, namespace) for host in hosts),
        credential=credential,
    )


def _credential(
    report: Report, tls: Mapping[str, Any] | None, path: str, *, https: bool
) -> str | None:
    """An HTTPS server's credentialName ("" for HTTP); None when the server cannot be served."""
    if not https:
        if tls is not None:
            report.refuse(path, "TLS settings on a plain HTTP server")
            return None
        return ""
    if tls is None:
        report.invalid(path, "an HTTPS server needs TLS settings")
        return None
    fields.check_keys(report, tls, path, supported=_TLS_KEYS, refused=_TLS_REFUSED)
    mode = fields.get_str(report, tls, "mode", path) or "PASSTHROUGH"
    if mode != "SIMPLE":
        report.refuse(f"{path}.mode", f"{mode}; the local gateway terminates TLS (SIMPLE) only")
        return None
    credential = fields.get_str(report, tls, "credentialName", path)
    if not credential:
        report.invalid(f"{path}.credentialName", "SIMPLE TLS needs a credentialName")
        return None
    return credential


def _sanitized(host: str, namespace: str) -> str:
    owner, slash, name = host.partition("/")
    if not slash:
        return host
    if owner == ".":
        return f"{namespace}/{name}"
    return name if owner == "*" else host
