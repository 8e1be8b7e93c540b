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
  creation order, which files cannot tell: when the other one has a route without a match, it
  may take every request before the canary's route is reached. That is a finding with no Istio
  code (Istio's analyzers accept the merge).
"""

from __future__ import annotations

from canary.api import istio as mesh
from canary.validation import fields
from canary.validation.findings import About
from canary.validation.inventory import Index, Placed, istio_key, not_found

NOT_FOUND = "IST0101"
NOT_SERVED = "IST0132"
CONFLICT = "IST0109"


def check(about: About, path: str, index: Index, placed: Placed[mesh.IstioObject]) -> None:
    namespace, name = istio_key(placed)
    vs = f"VirtualService {namespace}/{name}"
    written = mesh.hosts(placed.obj)
    for reference in fields.gateway_names(placed.obj):
        if reference == mesh.MESH_GATEWAY:
            continue
        key = fields.gateway_key(reference, namespace)
        gateway = index.gateways.get(key)
        if gateway is None:
            if index.gateways:
                about.add(
                    path,
                    f"{vs} spec.gateways names Gateway {not_found(key, index.gateways)}",
                    code=NOT_FOUND,
                )
            continue
        served = fields.server_hosts(gateway.obj, key[0])
        if not fields.gateway_serves(served, written, namespace):
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
    on_mesh = mesh.MESH_GATEWAY in fields.gateway_names(placed.obj)
    for host in hosts if on_mesh else []:
        rivals = _mesh_rivals(index, placed, host)
        if rivals:
            about.add(
                path,
                f"{vs} and {_names(rivals)} all route {host} on the mesh; sidecars take only one "
                "of them, so the canary's split may never be served",
                code=CONFLICT,
            )
    for reference in fields.gateway_names(placed.obj):
        if reference == mesh.MESH_GATEWAY:
            continue
        gateway = fields.gateway_key(reference, namespace)
        for host in hosts:
            for other in index.gateway_routes.get((gateway, host), []):
                catch_all = _catch_all(other) if other is not placed else None
                if catch_all is not None:
                    about.add(
                        path,
                        f"{vs} and {_names([other])} both route {host} on Gateway "
                        f"{gateway[0]}/{gateway[1]}; istiod merges their routes in creation "
                        f"order, and the other's {catch_all} has no match, so if it is older it "
                        "takes every request; route one host from one VirtualService",
                    )


def _catch_all(placed: Placed[mesh.IstioObject]) -> str | None:
    """The first http route of a VirtualService that takes every request, if any."""
    for route in mesh.http_routes(placed.obj):
        if not fields.http_matches(placed.obj, route.index):
            return route.label
    return None


def _mesh_rivals(
    index: Index, placed: Placed[mesh.IstioObject], host: str
) -> list[Placed[mesh.IstioObject]]:
    """The other mesh VirtualServices for `host` that Istio's IST0109 groups with this one.

    Istio groups by (scope, host): a scoped VirtualService (exportTo a list) with those of its
    scope for the same host, and with every one exported everywhere whose host matches (a
    wildcard on either side); one exported everywhere with the others everywhere for the same
    host, and with every scoped one whose host matches. Worked out once per VirtualService.
    """
    key = (f"mesh-rivals {host}", id(placed))
    if key not in index.memo:
        index.memo[key] = _rivals(index, placed, host)
    rivals: list[Placed[mesh.IstioObject]] = index.memo[key]
    return rivals


def _rivals(
    index: Index, placed: Placed[mesh.IstioObject], host: str
) -> list[Placed[mesh.IstioObject]]:
    namespace = istio_key(placed)[0]
    targets = mesh.export_to(placed.obj)
    everywhere = not targets or "*" in targets
    scopes = {"*"} if everywhere else {namespace if t == "." else t for t in targets}
    # Only a wildcard, here or there, can match a name other than its own.
    others = index.mesh_all if host.startswith("*") else index.mesh_wildcards
    rivals: list[Placed[mesh.IstioObject]] = []
    seen = {id(placed)}
    for scope, written, other in [*index.mesh_routes.get(host, []), *others]:
        if id(other) in seen:
            continue
        if everywhere:
            same = written == host if scope == "*" else mesh.names_match(written, host)
        else:
            same = written == host and scope in scopes
            same = same or (scope == "*" and mesh.names_match(written, host))
        if same:
            seen.add(id(other))
            rivals.append(other)
    return rivals


def _names(placed: list[Placed[mesh.IstioObject]]) -> str:
    return ", ".join(f"VirtualService {'/'.join(istio_key(p))} ({p.where})" for p in placed)
