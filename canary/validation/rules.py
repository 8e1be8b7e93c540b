"""The DestinationRules that apply to a host, joined as istiod joins them, and their subsets.

istiod (`PushContext.destinationRule`, `mergeDestinationRule`) picks the rules for a host as
seen by a caller in some namespace, and stops at the first namespace that has one:
1. the rules of the caller's namespace (here: the Canary's) visible there;
2. the rules of the service's namespace exported to the caller's (`exportTo` none or `*`, or
   naming that namespace; `.` keeps a rule to its own);
3. the same from the root namespace (`istio-system`).
Within a namespace an exact host beats a wildcard, and the longest wildcard wins. Several rules
for one host (none with a workload selector) are merged: subsets are added, a subset name
already defined is dropped (the older rule's wins) and only the first traffic policy is kept.
Files carry no creation times, so two rules that define one subset, or two traffic policies,
for one host are findings: which one wins in the cluster cannot be told from the files.

A short host in a rule means a service of the rule's own namespace. Rules with a workload
selector apply to the selected workloads alone and are left out of the join.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from canary.api import istio as mesh
from canary.validation.findings import About
from canary.validation.inventory import Index, Placed, istio_key

Rule = Placed[mesh.IstioObject]


@dataclass(slots=True)
class Joined:
    """The rules that apply to one host, in file order, and their merged subsets."""

    rules: list[Rule] = field(default_factory=list)
    # Each subset name with its labels and the rule it is taken from (the first to define it).
    subsets: dict[str, tuple[dict[str, str], Rule]] = field(default_factory=dict)

    @property
    def names(self) -> str:
        return ", ".join(f"DestinationRule {'/'.join(istio_key(r))}" for r in self.rules)


def applying(index: Index, host: str, caller: str) -> Joined:
    """The rules istiod applies to `host` (a full name) for a caller in namespace `caller`."""
    service = mesh.service_namespace(host)
    for namespace in dict.fromkeys([caller, service or caller, mesh.ROOT_NAMESPACE]):
        found = [
            rule
            for rule in _for_host(index, namespace, host)
            if mesh.visible_in(rule.obj, namespace, caller)
        ]
        if found:
            return _merged(found)
    return Joined()


def check_duplicates(about: About, path: str, host: str, joined: Joined) -> None:
    """Subsets defined twice, and traffic policies that disagree, among the applying rules."""
    first: dict[str, tuple[Any, Rule]] = {}
    policy: tuple[Any, Rule] | None = None
    for rule in joined.rules:
        name = f"DestinationRule {'/'.join(istio_key(rule))}"
        for entry in mesh.subset_entries(rule.obj):
            seen = first.get(entry["name"])
            if seen is None:
                first[entry["name"]] = (entry, rule)
                continue
            where = (
                "twice"
                if seen[1] is rule
                else f"as DestinationRule {'/'.join(istio_key(seen[1]))} does"
            )
            agree = "" if seen[0] == entry else ", and the definitions disagree"
            about.add(
                path,
                f"{name} defines subset {entry['name']} for {host} {where}{agree}; istiod keeps "
                "the older definition only, so give each subset one definition",
            )
        written = mesh.traffic_policy(rule.obj)
        if written is None:
            continue
        if policy is None:
            policy = (written, rule)
        elif policy[0] != written:
            about.add(
                path,
                f"{name} and DestinationRule {'/'.join(istio_key(policy[1]))} both set a "
                f"trafficPolicy for {host}, and they disagree; istiod keeps the older one only",
            )


def _for_host(index: Index, namespace: str, host: str) -> list[Rule]:
    exact = index.rules_by_host.get((namespace, host))
    if exact:
        return exact
    matching = [
        (mesh.fqdn(mesh.destination_host(rule.obj) or "", namespace), rule)
        for rule in index.wildcard_rules.get(namespace, [])
    ]
    matching = [(pattern, rule) for pattern, rule in matching if mesh.names_match(pattern, host)]
    if not matching:
        return []
    longest = max(len(pattern) for pattern, _ in matching)
    return [rule for pattern, rule in matching if len(pattern) == longest]


def _merged(rules: list[Rule]) -> Joined:
    joined = Joined(rules=rules)
    for rule in rules:
        for name, labels in mesh.subsets(rule.obj).items():
            joined.subsets.setdefault(name, (labels, rule))
    return joined
