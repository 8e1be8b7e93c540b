"""Which hosts exist, and which pods a subset selects: Services, ServiceEntries, Pods, Deployments.

Istio's analyzers look a host up among Services and ServiceEntries alike (`util.
InitServiceEntryHostMap`, `GetDestinationHost`): a Service `name` of `ns` is
`name.ns.svc.cluster.local`, exported as its `networking.istio.io/exportTo` annotation says; a
ServiceEntry's hosts (short ones read in its namespace) as its `exportTo` says, a wildcard host
`*.suffix` matching every name that ends in `.suffix`. Looked up from a namespace, a host is
first one exported everywhere, then one exported to that namespace.

On this, as the `PodNotSelectedAnalyzer` does, for the DestinationRules that apply to a Canary's
service:
- A rule whose host is no Service or ServiceEntry is IST0174: it configures nothing. Only when
  the paths hold Services or ServiceEntries (otherwise they live in the cluster).
- A subset the Canary uses whose labels, with the Service's selector (a ServiceEntry's
  `workloadSelector`), match no pod is IST0173: requests to it fail with 503 (no healthy
  upstream). Pods are the Pods in the paths and the pods each Deployment's template would make,
  of the service's namespace, and only when the paths hold any there (otherwise the pods are
  taken to run in the cluster). Istio matches pods of any namespace; a Service selects its own
  namespace's only, so this looks there alone.
"""

from __future__ import annotations

from canary.api import istio as mesh
from canary.validation import fields, rules
from canary.validation.findings import About
from canary.validation.inventory import Index, Placed, istio_key

SUBSET_SELECTS_NOTHING = "IST0173"
UNKNOWN_HOST = "IST0174"

# (scope: a namespace, or "*" for everywhere; full host) -> the Service or ServiceEntry.
Hosts = dict[tuple[str, str], Placed[mesh.IstioObject]]
_MEMO = ("hosts", 0)


def defined(
    index: Index, host: str, namespace: str, export_to: list[str] | None = None
) -> Placed[mesh.IstioObject] | None:
    """The Service or ServiceEntry that defines `host` (a full name) for namespace `namespace`,
    looked up as Istio's analyzers do for an object with `export_to` there."""
    hosts, wildcards = _hosts(index)
    found = hosts.get(("*", host))
    if found is not None:
        return found
    scopes = [namespace if scope == "." else scope for scope in export_to or [namespace]]
    for scope in scopes:
        found = hosts.get((scope, host))
        if found is not None:
            return found
    for scope, pattern, placed in wildcards:
        if scope in ("*", namespace) and host.removeprefix("*").endswith(pattern[1:]):
            return placed
    return None


def check(
    about: About,
    path: str,
    index: Index,
    joined: rules.Joined,
    *,
    service: str,
    caller: str,
    subsets: dict[str, str],
) -> None:
    """IST0174 for the rules that apply to the Canary's `service` for callers in `caller`,
    IST0173 for `subsets` (field path -> subset name) that those rules define with labels."""
    if index.services or index.service_entries:
        for rule in joined.rules:
            namespace, name = istio_key(rule)
            written = mesh.destination_host(rule.obj)
            if written is None or written.startswith("*"):
                continue
            host = mesh.fqdn(written, namespace)
            if defined(index, host, namespace, mesh.export_to(rule.obj)) is None:
                about.add(
                    path,
                    f"DestinationRule {namespace}/{name}'s host {written} is no Service or "
                    "ServiceEntry in the paths, so the rule configures nothing",
                    code=UNKNOWN_HOST,
                )
    owner = defined(index, service, caller)
    if owner is None:
        return
    pods = index.pod_labels.get(istio_key(owner)[0])
    selector = fields.service_selector(owner.obj)
    if not pods or selector is None or istio_key(owner)[0] in index.pods_unknown:
        return
    for field_path, subset in subsets.items():
        found = joined.subsets.get(subset)
        if found is None or not found[0]:
            continue
        wanted = {**selector, **found[0]}
        if not _selects_any(index, istio_key(owner)[0], wanted):
            shown = ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))
            about.add(
                field_path,
                f"DestinationRule {'/'.join(istio_key(found[1]))} subset {subset} selects no pod "
                f"of the paths in {istio_key(owner)[0]} ({shown}, with "
                f"{owner.obj.get('kind')} {'/'.join(istio_key(owner))}'s selector): requests "
                "to it fail with 503 (no healthy upstream)",
                code=SUBSET_SELECTS_NOTHING,
            )


def _selects_any(index: Index, namespace: str, wanted: dict[str, str]) -> bool:
    """Whether some pod of `namespace` carries every label of `wanted`: looked up through the
    pods that carry its rarest label, so that many Canaries and pods in one namespace do not
    make the check quadratic."""
    memo = (f"pods-by-label {namespace}", 0)
    if memo not in index.memo:
        by_label: dict[tuple[str, str], list[dict[str, str]]] = {}
        for labels in index.pod_labels.get(namespace, []):
            for pair in labels.items():
                by_label.setdefault(pair, []).append(labels)
        index.memo[memo] = by_label
    table: dict[tuple[str, str], list[dict[str, str]]] = index.memo[memo]
    if not wanted:
        return bool(index.pod_labels.get(namespace))
    rarest = min((table.get(pair, []) for pair in wanted.items()), key=len)
    return any(all(labels.get(k) == v for k, v in wanted.items()) for labels in rarest)


def _hosts(
    index: Index,
) -> tuple[Hosts, list[tuple[str, str, Placed[mesh.IstioObject]]]]:
    """Built once per Index: every host by scope, and the wildcard ServiceEntry hosts."""
    if _MEMO not in index.memo:
        hosts: Hosts = {}
        wildcards: list[tuple[str, str, Placed[mesh.IstioObject]]] = []
        for (namespace, name), placed in index.services.items():
            exported = fields.service_export_to(placed.obj) or ["*"]
            for written in exported:
                scope = namespace if written == "." else written
                hosts.setdefault((scope, mesh.fqdn(name, namespace)), placed)
        for (namespace, _), placed in index.service_entries.items():
            targets = mesh.export_to(placed.obj)
            scopes = ["*"] if not targets or "*" in targets else targets
            for written in mesh.hosts(placed.obj):
                host = mesh.fqdn(written, namespace)
                for target in scopes:
                    scope = namespace if target == "." else target
                    hosts.setdefault((scope, host), placed)
                    if host.startswith("*"):
                        wildcards.append((scope, host, placed))
        index.memo[_MEMO] = (hosts, wildcards)
    built: tuple[Hosts, list[tuple[str, str, Placed[mesh.IstioObject]]]] = index.memo[_MEMO]
    return built
