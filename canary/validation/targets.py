"""What the managed route sends to and mirrors to: hosts, ports and mirror subsets that exist.

Istio's rules (the `DestinationHostAnalyzer` and `DestinationRuleAnalyzer`), asked of the
managed route's destinations and its mirrors (`mirror`, `mirrors[].destination`):
- A cluster host (`name.ns.svc.cluster.local`, a short name read in the VirtualService's
  namespace) must be a Kubernetes Service in the paths, exported (annotation
  `networking.istio.io/exportTo`) to the VirtualService's namespace: IST0101. Only when the
  paths hold Services at all (else they live in the cluster), and only cluster hosts: any other
  name may be a ServiceEntry's in the cluster. A host a ServiceEntry in the paths defines
  (`hosts.defined`, as Istio looks them up) is found, whatever its name.
- A destination without a port, to a Service with several, is IST0112: Envoy cannot tell which
  port is meant. A port the Service does not have is IST0101 (`host:port`).
- A mirror to a subset no applying DestinationRule defines is IST0101: the mirrored copies go
  nowhere. (The route's own subsets are checked against the Canary's DestinationRule.)
"""

from __future__ import annotations

from canary.api import istio as mesh
from canary.validation import fields, hosts, rules
from canary.validation.findings import About
from canary.validation.inventory import Index, Placed, istio_key

NOT_FOUND = "IST0101"
PORT_REQUIRED = "IST0112"


def check(
    about: About, index: Index, placed: Placed[mesh.IstioObject], route: mesh.Route, caller: str
) -> None:
    namespace, name = istio_key(placed)
    where = f"VirtualService {namespace}/{name}"
    destinations = fields.route_targets(placed.obj, route.index)
    mirrors = fields.mirror_targets(placed.obj, route.index)
    for target in [*destinations, *mirrors]:
        if target.host is not None:
            _check_service(about, index, where, namespace, target)
    for target in mirrors:
        if target.host is None:
            about.add("spec.service.route", f"{where} {target.path} has no host")
        elif target.subset is not None:
            host = mesh.fqdn(target.host, namespace)
            joined = rules.applying(index, host, caller)
            if (joined.rules or index.destination_rules) and target.subset not in joined.subsets:
                defined = ", ".join(joined.subsets) or "none"
                about.add(
                    "spec.service.route",
                    f"{where} {target.path} mirrors to {target.host}/{target.subset}, a subset no "
                    f"DestinationRule for {host} defines (subsets: {defined})",
                    code=NOT_FOUND,
                )


def _check_service(
    about: About, index: Index, where: str, namespace: str, target: fields.Target
) -> None:
    assert target.host is not None
    host = mesh.fqdn(target.host, namespace)
    service = index.services_by_host.get(host)
    if service is None:
        if hosts.defined(index, host, namespace) is not None:
            return
        if index.services and mesh.service_namespace(host) is not None:
            about.add(
                "spec.service.route",
                f"{where} {target.path} sends to {target.host}, but no Service or ServiceEntry "
                f"{host} is in the paths",
                code=NOT_FOUND,
            )
        return
    owner = istio_key(service)[0]
    if not mesh.exported(fields.service_export_to(service.obj), owner, namespace):
        about.add(
            "spec.service.route",
            f"{where} {target.path} sends to {target.host}, but Service "
            f"{'/'.join(istio_key(service))} is not exported to {namespace} (its "
            f"networking.istio.io/exportTo: {', '.join(fields.service_export_to(service.obj))})",
            code=NOT_FOUND,
        )
        return
    ports = fields.service_ports(service.obj)
    listed = ", ".join(str(port) for port in ports) or "none"
    if target.port is None and len(ports) > 1:
        about.add(
            "spec.service.route",
            f"{where} {target.path} names no port, but Service {'/'.join(istio_key(service))} "
            f"has several ({listed}); add destination.port.number",
            code=PORT_REQUIRED,
        )
    elif target.port is not None and target.port not in ports:
        about.add(
            "spec.service.route",
            f"{where} {target.path} sends to {target.host}:{target.port}, a port Service "
            f"{'/'.join(istio_key(service))} does not have (ports: {listed})",
            code=NOT_FOUND,
        )
