"""What each side of a call resolves its mTLS settings to, by istiod's rules.

The server side (`Accepts`): which PeerAuthentication applies to a workload and the mode it
leaves (`ComposePeerAuthentication`), and the namespace's mode as auto mTLS reads it. The
client side (`Sends`): which DestinationRule a caller of a host uses and the `tls.mode` it
leaves for a subset and port (`MergeSubsetTrafficPolicy`). `mtls.py` judges the pairs; the
rules themselves are in its docstring. Objects stay plain dicts; a field of the wrong type
reads as absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canary.api.istio import IstioObject, host_matches

STRICT, PERMISSIVE, DISABLE = "STRICT", "PERMISSIVE", "DISABLE"
SERVER_MODES = frozenset({STRICT, PERMISSIVE, DISABLE, "UNSET"})
ISTIO_MUTUAL, MUTUAL, SIMPLE = "ISTIO_MUTUAL", "MUTUAL", "SIMPLE"
CLIENT_MODES = frozenset({ISTIO_MUTUAL, MUTUAL, SIMPLE, DISABLE})
ROOT_NAMESPACE = "istio-system"


@dataclass(frozen=True, slots=True)
class Accepts:
    """What a workload accepts (STRICT, PERMISSIVE, DISABLE) and which object said so."""

    mode: str
    source: str | None
    path: str
    # The workload port a portLevelMtls entry speaks for; None: every other port.
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Sends:
    """What a caller sends: a tls mode, or None for auto mTLS; and which field said so."""

    mode: str | None
    source: str | None
    path: str
    # The service port a portLevelSettings entry speaks for; None: every other port.
    port: int | None = None


def server_modes(
    namespace: str,
    labels: Mapping[str, str],
    peer_authentications: Sequence[IstioObject],
    root_namespace: str = ROOT_NAMESPACE,
) -> list[Accepts]:
    """What a workload with `labels` in `namespace` accepts: its mode, then one per port entry."""
    mesh = _oldest(p for p in peer_authentications if _level(p, root_namespace) == "mesh")
    space = _oldest(
        p
        for p in peer_authentications
        if _level(p, root_namespace) == "namespace" and _namespace(p) == namespace
    )
    workload = _oldest(
        p
        for p in peer_authentications
        if _level(p, root_namespace) == "workload"
        and _namespace(p) == namespace
        and _selects(p, labels)
    )
    accepts = Accepts(PERMISSIVE, None, "")
    for policy in (mesh, space, workload):
        if policy is not None and (mode := _mode(_spec(policy).get("mtls"))) != "UNSET":
            accepts = Accepts(mode, _name(policy), "spec.mtls.mode")
    found = [accepts]
    levels = _spec(workload).get("portLevelMtls") if workload is not None else None
    for key, entry in levels.items() if isinstance(levels, dict) else ():
        mode = _mode(entry)
        port = _port(key)
        path = f"spec.portLevelMtls[{key}].mode"
        if mode == "UNSET":
            found.append(Accepts(accepts.mode, accepts.source, accepts.path, port))
        else:
            found.append(Accepts(mode, _name(workload) if workload else None, path, port))
    return found


def namespace_mode(
    namespace: str,
    peer_authentications: Sequence[IstioObject],
    root_namespace: str = ROOT_NAMESPACE,
) -> Accepts:
    """The namespace's mode as auto mTLS sees it: namespace or mesh policy, never a workload's."""
    mesh = _oldest(p for p in peer_authentications if _level(p, root_namespace) == "mesh")
    space = _oldest(
        p
        for p in peer_authentications
        if _level(p, root_namespace) == "namespace" and _namespace(p) == namespace
    )
    accepts = Accepts(PERMISSIVE, None, "")
    for policy in (mesh, space):
        if policy is not None and (mode := _mode(_spec(policy).get("mtls"))) != "UNSET":
            accepts = Accepts(mode, _name(policy), "spec.mtls.mode")
    return accepts


def rules_for(
    host: str,
    namespace: str,
    destination_rules: Sequence[IstioObject],
    root_namespace: str = ROOT_NAMESPACE,
) -> list[IstioObject]:
    """The DestinationRules some caller of `host` would use, one per namespace that has one.

    Callers in the service's namespace use its rule, else the root namespace's; a caller in a
    namespace with its own rule for the host uses that one. In one namespace an exact host beats
    a wildcard, then the oldest wins. A rule with a `workloadSelector` is left out (it speaks
    for some callers only, and istiod keeps it apart).
    """
    by_namespace: dict[str, list[IstioObject]] = {}
    for rule in destination_rules:
        spec = _spec(rule)
        written = spec.get("host")
        if spec.get("workloadSelector") or not isinstance(written, str):
            continue
        if host_matches(written, _namespace(rule), host, namespace):
            by_namespace.setdefault(_namespace(rule), []).append(rule)
    chosen = {ns: _most_specific(rules) for ns, rules in by_namespace.items()}
    if namespace not in chosen and root_namespace in chosen:
        chosen[namespace] = chosen.pop(root_namespace)
    return [chosen[ns] for ns in sorted(chosen)]


def client_modes(rule: IstioObject, subset: str, port: int | None = None) -> list[Sends]:
    """What callers under `rule` send to `subset`: at `port`, or (None) at each port it names."""
    spec = _spec(rule)
    host_policy = _dict(spec.get("trafficPolicy"))
    subset_index, subset_policy = _subset_policy(spec, subset)
    ports = (
        [port]
        if port is not None
        else [None, *sorted(_ports(host_policy) | _ports(subset_policy or {}))]
    )
    name = _name(rule)
    found: list[Sends] = []
    for at in ports:
        sends = _tls_at(host_policy, "spec.trafficPolicy", at, name)
        if subset_policy is not None:
            base = f"spec.subsets[{subset_index}].trafficPolicy"
            index = _port_entry(subset_policy, at)
            if index is not None:
                entry = _dict(subset_policy["portLevelSettings"][index])
                sends = _sends(entry.get("tls"), name, f"{base}.portLevelSettings[{index}].tls")
            elif "tls" in subset_policy and subset_policy["tls"] is not None:
                sends = _sends(subset_policy["tls"], name, f"{base}.tls")
        found.append(Sends(sends.mode, sends.source, sends.path, at))
    return found


def _tls_at(policy: Mapping[str, Any], base: str, port: int | None, name: str) -> Sends:
    index = _port_entry(policy, port)
    if index is not None:
        entry = _dict(policy["portLevelSettings"][index])
        # A port entry replaces the host's policy whole: its tls is not inherited.
        return _sends(entry.get("tls"), name, f"{base}.portLevelSettings[{index}].tls")
    return _sends(policy.get("tls"), name, f"{base}.tls")


def _sends(tls: Any, name: str, path: str) -> Sends:
    if not isinstance(tls, dict):
        return Sends(None, name, path)
    # A `tls` without a mode is DISABLE, the enum's zero, as istiod reads it: not auto mTLS.
    mode = tls.get("mode")
    return Sends(str(mode) if mode else DISABLE, name, path)


def _port_entry(policy: Mapping[str, Any], port: int | None) -> int | None:
    entries = policy.get("portLevelSettings")
    if port is None or not isinstance(entries, list):
        return None
    for index, entry in enumerate(entries):
        number = _dict(_dict(entry).get("port")).get("number")
        if number == port:
            return index
    return None


def _ports(policy: Mapping[str, Any]) -> set[int]:
    entries = policy.get("portLevelSettings")
    found: set[int] = set()
    for entry in entries if isinstance(entries, list) else []:
        number = _dict(_dict(entry).get("port")).get("number")
        if isinstance(number, int) and not isinstance(number, bool):
            found.add(number)
    return found


def _subset_policy(spec: Mapping[str, Any], subset: str) -> tuple[int, dict[str, Any] | None]:
    entries = spec.get("subsets")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict) and entry.get("name") == subset:
            policy = entry.get("trafficPolicy")
            return index, policy if isinstance(policy, dict) else None
    return -1, None


def _most_specific(rules: list[IstioObject]) -> IstioObject:
    def key(rule: IstioObject) -> tuple[bool, str, str]:
        written = str(_spec(rule).get("host", ""))
        return ("*" in written, _created(rule), _bare_name(rule))

    return min(rules, key=key)


def _level(policy: IstioObject, root_namespace: str) -> str:
    selector = _dict(_spec(policy).get("selector")).get("matchLabels")
    if isinstance(selector, dict) and selector:
        # A selector in the root namespace selects nothing (istiod skips it).
        return "ignored" if _namespace(policy) == root_namespace else "workload"
    return "mesh" if _namespace(policy) == root_namespace else "namespace"


def _selects(policy: IstioObject, labels: Mapping[str, str]) -> bool:
    selector = _dict(_dict(_spec(policy).get("selector")).get("matchLabels"))
    return all(labels.get(str(k)) == str(v) for k, v in selector.items())


def _oldest(policies: Any) -> IstioObject | None:
    found = sorted(policies, key=lambda p: (_created(p), _bare_name(p)))
    return found[0] if found else None


def _mode(mtls: Any) -> str:
    mode = _dict(mtls).get("mode")
    return "UNSET" if mode is None or mode == "" else str(mode)


def _port(key: Any) -> int | None:
    try:
        return int(key)
    except (TypeError, ValueError):
        return None


def _created(obj: IstioObject) -> str:
    # RFC 3339 in UTC sorts as text; a file's object has none, and then the name decides.
    return str(_dict(obj.get("metadata")).get("creationTimestamp") or "")


def _bare_name(obj: IstioObject) -> str:
    return str(_dict(obj.get("metadata")).get("name") or "")


def _name(obj: IstioObject) -> str:
    return f"{_namespace(obj)}/{_bare_name(obj)}"


def _namespace(obj: IstioObject) -> str:
    namespace = _dict(obj.get("metadata")).get("namespace")
    return namespace if isinstance(namespace, str) and namespace else "default"


def _spec(obj: IstioObject) -> dict[str, Any]:
    return _dict(obj.get("spec"))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
