"""`canary validate`'s mTLS findings: settings that would refuse traffic to a Canary's subsets.

Two kinds. The mesh's own callers: `canary.api.mtls` pairs what each subset's pods accept (the
PeerAuthentications in the paths) with what callers send (the DestinationRules for the host),
as istiod would. And callers outside the mesh (flagger#239): the controller calls every webhook
without a sidecar, and a load tester is often run without one too, so a webhook URL, or a URL in
its metadata (a load tester's `cmd`), that names the Canary's own service sends plaintext, which
a STRICT workload refuses.

The subsets' pods are known by the labels of the DestinationRule's subset and the Canary's own
`labels` (which win, being the pods' labels). No PeerAuthentication in the paths reads as none
in the cluster (PERMISSIVE): a mesh-wide STRICT policy kept elsewhere is not seen.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from canary.api import istio, mtls
from canary.api.resources import Canary
from canary.validation.findings import About
from canary.validation.inventory import Index, model_key

_URL = re.compile(r"https?://[^\s'\"]+")
_SERVICE_SUFFIX = ".svc.cluster.local"


def check(about: About, canary: Canary, index: Index) -> None:
    spec = canary.spec
    namespace = model_key(canary)[0]
    workload_namespace = service_namespace(spec.service.host, namespace)
    rule = index.destination_rules.get(spec.service.destination_rule_key(namespace))
    written = istio.subsets(rule.obj) if rule else {}
    roles = {spec.stable.subset: "stable", spec.canary.subset: "canary"}
    subsets = {
        variant.subset: {**written.get(variant.subset, {}), **(variant.labels or {})}
        for variant in (spec.stable, spec.canary)
    }
    peer_authentications = _policies_for(index, workload_namespace)
    host = istio.fqdn(spec.service.host, namespace)
    for problem in mtls.problems(
        namespace=workload_namespace,
        host=host,
        subsets=subsets,
        peer_authentications=peer_authentications,
        destination_rules=_rules_for(index, host),
        port=spec.service.port,
    ):
        about.add(f"spec.{roles[problem.subset]}.subset", f"mTLS: {problem.line()}")
    _check_outside_callers(about, canary, workload_namespace, subsets, peer_authentications)


# Keys of what is worked out once per Index (Index.memo) rather than once per Canary: with every
# rule or policy handed to every Canary, 10,000 Canaries with a rule each would cost 10^8 steps.
_RULES_BY_HOST = ("mtls.rules_by_host", 0)
_POLICIES_BY_NAMESPACE = ("mtls.policies_by_namespace", 0)


def _rules_for(index: Index, host: str) -> list[istio.IstioObject]:
    """The DestinationRules that may speak for `host`: those for it by name in any namespace,
    and every wildcard rule (few, and matched by `mtls` itself)."""
    by_host: dict[str, list[istio.IstioObject]] | None = index.memo.get(_RULES_BY_HOST)
    if by_host is None:
        by_host = {}
        for (_, resolved), rules in index.rules_by_host.items():
            by_host.setdefault(resolved, []).extend(placed.obj for placed in rules)
        index.memo[_RULES_BY_HOST] = by_host
    wildcards = [placed.obj for rules in index.wildcard_rules.values() for placed in rules]
    return by_host.get(host, []) + wildcards


def _policies_for(index: Index, namespace: str) -> list[istio.IstioObject]:
    """The PeerAuthentications that can apply to a workload in `namespace`: its own and the
    root namespace's."""
    by_namespace: dict[str, list[istio.IstioObject]] | None = index.memo.get(_POLICIES_BY_NAMESPACE)
    if by_namespace is None:
        by_namespace = {}
        for (found_in, _), placed in index.peer_authentications.items():
            by_namespace.setdefault(found_in, []).append(placed.obj)
        index.memo[_POLICIES_BY_NAMESPACE] = by_namespace
    namespaces = dict.fromkeys((istio.ROOT_NAMESPACE, namespace))
    return [policy for ns in namespaces for policy in by_namespace.get(ns, [])]


def service_namespace(host: str, namespace: str) -> str:
    """The namespace of the service `host` names: its own in `name.ns.svc.cluster.local`."""
    if host.endswith(_SERVICE_SUFFIX):
        parts = host[: -len(_SERVICE_SUFFIX)].split(".")
        if len(parts) == 2:
            return parts[1]
    return namespace


def _check_outside_callers(
    about: About,
    canary: Canary,
    workload_namespace: str,
    subsets: dict[str, dict[str, str]],
    peer_authentications: list[istio.IstioObject],
) -> None:
    spec = canary.spec
    short = spec.service.host.split(".")[0]
    for position, hook in enumerate(spec.analysis.webhooks):
        for path, url, by in _urls(position, hook.url, hook.metadata):
            if not _names_service(_hostname(url), short, workload_namespace):
                continue
            for subset, labels in subsets.items():
                strict = [
                    accepts
                    for accepts in mtls.server_modes(
                        workload_namespace, labels, peer_authentications
                    )
                    if accepts.mode == mtls.STRICT and accepts.port is None
                ]
                if strict:
                    about.add(
                        path,
                        f"{url} reaches {spec.service.host}, whose subset {subset} accepts mTLS "
                        f"only (PeerAuthentication {strict[0].source} {strict[0].path}: STRICT), "
                        f"but {by} sends plaintext, which is refused "
                        "(flagger#239); give the caller a sidecar, or a PERMISSIVE workload "
                        "policy for the port it calls",
                    )
                    break


def _urls(position: int, url: str, metadata: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    base = f"spec.analysis.webhooks[{position}]"
    yield f"{base}.url", url, "the controller, which has no sidecar,"
    for key, value in sorted(metadata.items()):
        for found in _URL.findall(value):
            yield f"{base}.metadata.{key}", found, "a load tester run without a sidecar"


def _hostname(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        # A URL in free text (a load tester's command) may be cut or malformed: not a host.
        return ""


def _names_service(host: str, short: str, namespace: str) -> bool:
    """Whether a URL's host is the service (`reviews`, `reviews.prod`, `reviews.prod.svc...`).

    Flagger's generated `<name>-canary` and `<name>-primary` services select the same pods.
    """
    name, _, rest = host.partition(".")
    if name not in (short, f"{short}-canary", f"{short}-primary"):
        return False
    return rest in ("", namespace, f"{namespace}.svc", f"{namespace}{_SERVICE_SUFFIX}")
