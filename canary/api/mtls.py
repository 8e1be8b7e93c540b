"""Which mTLS settings would break traffic to a Canary's subsets, by istiod's rules.

Two objects decide whether a request reaches a sidecar: the PeerAuthentication that applies to
the server workload says what it accepts, and the DestinationRule that applies to the caller
says what it sends. This module works out both as istiod does and reports each pairing that
cannot meet, naming the object to change and its field.

What the server accepts (`pilot/pkg/security/authn/policy_applier.go`,
`ComposePeerAuthentication`): the mesh policy (root namespace, no selector), then the
namespace's (no selector), then a workload's (a `selector` whose labels the pods carry; one in
the root namespace is ignored), each overriding the one before unless its mode is UNSET; of two
at the same level the oldest wins (creationTimestamp, then name). `portLevelMtls` counts only
on a workload policy, keyed by the workload's port. Nothing at all: PERMISSIVE.

What the caller sends (`pilot/pkg/networking/util` `MergeSubsetTrafficPolicy`,
`core/cluster_tls.go`): the rule's `trafficPolicy.tls`, replaced whole by a
`portLevelSettings` entry for the port; a subset's own policy replaces the host's `tls` when it
sets one (and a subset's port entry always does). No `tls` at all means auto mTLS: istiod
sends mTLS unless the service namespace's policy (namespace or mesh level only: workload and
port policies are not consulted, `BestEffortInferServiceMTLSMode`) is DISABLE, or auto mTLS is
off in the mesh config.

What meets (`core/filterchain_options.go`): STRICT takes mTLS only; PERMISSIVE takes mTLS and
plaintext (an HTTP port's TLS chain matches Istio's ALPN, so a caller's own SIMPLE/MUTUAL TLS
matches no chain); DISABLE takes plaintext only. Istio's analyzer for this (IST0113,
MTLSPolicyConflict) was retired, so the problems carry no analyzer code.

Pure: plain dicts in, values out; the controller and `canary validate` share it. What each
side resolves to is in `mtls_settings.py`; this module judges the pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from canary.api.istio import IstioObject
from canary.api.mtls_settings import (
    CLIENT_MODES,
    DISABLE,
    ISTIO_MUTUAL,
    MUTUAL,
    PERMISSIVE,
    ROOT_NAMESPACE,
    SERVER_MODES,
    SIMPLE,
    STRICT,
    Accepts,
    Sends,
    client_modes,
    namespace_mode,
    rules_for,
    server_modes,
)


@dataclass(frozen=True, slots=True)
class MtlsProblem:
    """One pairing that breaks traffic to `subset`: the object to change, its field, and how."""

    subset: str
    object: str
    path: str
    message: str

    def line(self) -> str:
        return f"{self.object} {self.path}: {self.message}"


def problems(
    *,
    namespace: str,
    host: str,
    subsets: Mapping[str, Mapping[str, str]],
    peer_authentications: Sequence[IstioObject],
    destination_rules: Sequence[IstioObject],
    root_namespace: str = ROOT_NAMESPACE,
    port: int | None = None,
    auto_mtls: bool = True,
) -> list[MtlsProblem]:
    """The problems of traffic to each subset (name → the pods' labels) of `host`.

    `namespace` is the workload's; `port` the service port callers use (None: every port a
    rule names, and the rest). Callers may sit in any namespace, so each DestinationRule for the
    host that some caller would use is judged.
    """
    found: list[MtlsProblem] = []
    service_mode = namespace_mode(namespace, peer_authentications, root_namespace)
    rules = rules_for(host, namespace, destination_rules, root_namespace)
    # No rule at all: every caller is on auto mTLS.
    unruled = [Sends(None, None, "spec.trafficPolicy.tls")]
    for subset, labels in subsets.items():
        accepts = server_modes(namespace, labels, peer_authentications, root_namespace)
        found.extend(_unknown_modes(subset, accepts))
        senders = [s for rule in rules for s in client_modes(rule, subset, port)] or unruled
        for sends in senders:
            for accepted in accepts:
                problem = _meet(subset, sends, accepted, service_mode, auto_mtls)
                if problem is not None and problem not in found:
                    found.append(problem)
    return found


def _meet(
    subset: str, sends: Sends, accepts: Accepts, service_mode: Accepts, auto_mtls: bool
) -> MtlsProblem | None:
    port = _port_words(sends, accepts)
    server = f"{accepts.source} ({accepts.path}: {accepts.mode})" if accepts.source else None
    if sends.mode is not None and sends.mode not in CLIENT_MODES:
        return MtlsProblem(
            subset,
            f"DestinationRule {sends.source}",
            f"{sends.path}.mode",
            f"{sends.mode!r} is not a tls mode ({', '.join(sorted(CLIENT_MODES))}), so what "
            f"callers send to subset {subset} is unknown",
        )
    if accepts.mode not in (STRICT, PERMISSIVE, DISABLE):
        return None
    if sends.mode is None:
        if auto_mtls and service_mode.mode != DISABLE:
            if accepts.mode == DISABLE:
                return MtlsProblem(
                    subset,
                    f"PeerAuthentication {accepts.source}",
                    accepts.path,
                    f"subset {subset}{port} accepts plaintext only, but auto mTLS sends it mTLS "
                    f"(auto mTLS reads only namespace and mesh policies, here "
                    f"{service_mode.mode}); set tls.mode: DISABLE for the subset in "
                    f"{_rule_words(sends)} or drop this DISABLE",
                )
            return None
        if accepts.mode != STRICT:
            return None
        why = (
            "auto mTLS is off in the mesh config"
            if not auto_mtls
            else f"auto mTLS follows {service_mode.source or 'the mesh'} "
            f"({service_mode.path or 'default'}: DISABLE) and sends plaintext"
        )
        if sends.source is None:
            return MtlsProblem(
                subset,
                f"PeerAuthentication {accepts.source}",
                accepts.path,
                f"subset {subset}{port} accepts mTLS only, but no DestinationRule sets tls and "
                f"{why}; add one for the host with tls.mode: ISTIO_MUTUAL",
            )
        return MtlsProblem(
            subset,
            f"DestinationRule {sends.source}",
            f"{sends.path}.mode",
            f"is not set, and {why}, yet subset {subset}{port} accepts mTLS only ({server}); "
            "set ISTIO_MUTUAL",
        )
    target = f"DestinationRule {sends.source}"
    path = f"{sends.path}.mode"
    if sends.mode == DISABLE and accepts.mode == STRICT:
        return MtlsProblem(
            subset,
            target,
            path,
            f"sends plaintext to subset {subset}{port}, which {server} accepts mTLS only; "
            "set ISTIO_MUTUAL (or drop tls for auto mTLS)",
        )
    if sends.mode == ISTIO_MUTUAL and accepts.mode == DISABLE:
        return MtlsProblem(
            subset,
            target,
            path,
            f"sends mTLS to subset {subset}{port}, which {server} accepts plaintext only; "
            "set DISABLE for that subset, or change the PeerAuthentication",
        )
    if sends.mode in (SIMPLE, MUTUAL) and accepts.mode in (STRICT, PERMISSIVE):
        who = server or "no PeerAuthentication (PERMISSIVE)"
        return MtlsProblem(
            subset,
            target,
            path,
            f"sends {sends.mode} TLS with its own certificates to the sidecar of subset "
            f"{subset}{port}, which {who} takes only Istio's mTLS there; use ISTIO_MUTUAL",
        )
    return None


def _unknown_modes(subset: str, accepts: list[Accepts]) -> list[MtlsProblem]:
    found = []
    for a in accepts:
        if a.mode not in SERVER_MODES:
            why = f"{a.mode!r} is not a mode ({', '.join(sorted(SERVER_MODES))})"
        elif a.port is None and a.path.startswith("spec.portLevelMtls"):
            why = "the key is not a port number"
        else:
            continue
        found.append(
            MtlsProblem(
                subset,
                f"PeerAuthentication {a.source}",
                a.path,
                f"{why}, so what subset {subset} accepts is unknown",
            )
        )
    return found


def _port_words(sends: Sends, accepts: Accepts) -> str:
    parts = []
    if sends.port is not None:
        parts.append(f"service port {sends.port}")
    if accepts.port is not None:
        parts.append(f"workload port {accepts.port}")
    return f" ({', '.join(parts)})" if parts else ""


def _rule_words(sends: Sends) -> str:
    return f"DestinationRule {sends.source}" if sends.source else "no DestinationRule"


__all__ = [
    "CLIENT_MODES",
    "DISABLE",
    "ISTIO_MUTUAL",
    "MUTUAL",
    "PERMISSIVE",
    "ROOT_NAMESPACE",
    "SERVER_MODES",
    "SIMPLE",
    "STRICT",
    "Accepts",
    "MtlsProblem",
    "Sends",
    "client_modes",
    "namespace_mode",
    "problems",
    "rules_for",
    "server_modes",
]
