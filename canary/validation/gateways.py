"""Where the managed VirtualService is served, and who else serves its hosts there.

Istio's rules, asked of the VirtualService a Canary manages (and reported on the Canary):
- Each of `spec.gateways` is `mesh` (the sidecars; none written means `mesh` alone) or a Gateway:
  `namespace/name`, or a short name in the VirtualService's namespace. A Gateway missing from
  paths that hold Gateways is IST0101 (as with VirtualServices: paths with none mean the
  Gateways live in the cluster). Istio's analyzer then also reports IST0132 for the missing
  Gateway's empty hosts; that second line says nothing new, so it is left out.
- A Gateway whose servers serve none of the VirtualService's hosts is IST0132. A server host
  `ns/host` serves VirtualServices of `ns` only (`./host`: the Gateway's own namespace; `*/host`
  every namespace); `*` and `*.suffix` match by suffix, either way round, as Istio's
  `host.Name.Matches` does.
- Two VirtualServices bound to the mesh for one host (within one exportTo scope) are IST0109:
  sidecars take one of them only. Two on one Gateway for one host are merged by istiod in
  creation order, which files cannot tell, so the other's routes may take the canary's traffic;
  that is a finding with no Istio code.
"""

from __future__ import annotations

from canary.api import istio as mesh
from canary.validation.findings import About
from canary.validation.inventory import Index, Placed, istio_key, not_found

NOT_FOUND = "IST0101"
NOT_SERVED = "IST0132"
CONFLICT = "IST0109"


def check(about: About, path: str, index: Index, placed: Placed[mesh.IstioObject]) -> None:
    namespace, name = istio_key(placed)
    vs = f"VirtualService {namespace}/{name}"
    written = mesh.hosts(placed.obj)
    for reference in mesh.gateway_names(placed.obj):
        if reference == mesh.MESH_GATEWAY:
            continue
        key = mesh.gateway_key(reference, namespace)
        gateway = index.gateways.get(key)
        if gateway is None:
            if index.gateways:
                about.add(
                    path,
                    f"{vs} spec.gateways names Gateway {not_found(key, index.gateways)}",
                    code=NOT_FOUND,
                )
            continue
        served = mesh.server_hosts(gateway.obj, key[0])
        if not mesh.gateway_serves(served, written, namespace):
            about.add(
                path,
                f"{vs} spec.hosts ({', '.join(written) or 'none'}) are not served by Gateway "
                f"{key[0]}/{key[1]} (its servers' hosts: {', '.join(served) or 'none'})",
                code=NOT_SERVED,
            )
    _check_conflicts(about, path, index, placed)


def _check_conflicts(
    about: About, path: str, index: Index, placed: Placed[mesh.IstioObject]
) -> None:
    namespace, name = istio_key(placed)
    vs = f"VirtualService {namespace}/{name}"
    hosts = [mesh.fqdn(host, namespace) for host in mesh.hosts(placed.obj)]
    for host in hosts:
        rivals = _mesh_rivals(index, placed, host)
        if rivals:
            about.add(
                path,
                f"{vs} and {_names(rivals)} all route {host} on the mesh; sidecars take only one "
                "of them, so the canary's split may never be served",
                code=CONFLICT,
            )
    for reference in mesh.gateway_names(placed.obj):
        if reference == mesh.MESH_GATEWAY:
            continue
        gateway = mesh.gateway_key(reference, namespace)
        for host in hosts:
            others = [p for p in index.gateway_routes.get((gateway, host), []) if p is not placed]
            if others:
                about.add(
                    path,
                    f"{vs} and {_names(others)} all route {host} on Gateway "
                    f"{gateway[0]}/{gateway[1]}; istiod merges them in creation order, so the "
                    "other's routes may take the canary's traffic first; route one host from "
                    "one VirtualService",
                )


def _mesh_rivals(
    index: Index, placed: Placed[mesh.IstioObject], host: str
) -> list[Placed[mesh.IstioObject]]:
    """The other mesh VirtualServices for `host` that Istio's IST0109 groups with this one.

    A scoped VirtualService (exportTo a list) conflicts with those of its scope and with those
    exported everywhere whose host matches (wildcards included); one exported everywhere with
    every other for the host.
    """
    namespace = istio_key(placed)[0]
    targets = mesh.export_to(placed.obj)
    everywhere = not targets or "*" in targets
    scopes = {"*"} if everywhere else {namespace if t == "." else t for t in targets}
    candidates = [host] + ([] if everywhere else _wildcards(host))
    rivals: list[Placed[mesh.IstioObject]] = []
    seen = {id(placed)}
    for candidate in candidates:
        for scope, other in index.mesh_routes.get(candidate, []):
            if id(other) not in seen and (everywhere or scope == "*" or scope in scopes):
                seen.add(id(other))
                rivals.append(other)
    return rivals


def _wildcards(host: str) -> list[str]:
    """The wildcard names that cover `host`: `*.b.c`, `*.c` and `*` for `a.b.c`."""
    labels = host.split(".")
    return [f"*.{'.'.join(labels[cut:])}" for cut in range(1, len(labels))] + ["*"]


def _names(placed: list[Placed[mesh.IstioObject]]) -> str:
    return ", ".join(f"VirtualService {'/'.join(istio_key(p))} ({p.where})" for p in placed)
