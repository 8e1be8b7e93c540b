"""Objects that collide: the same object twice, or two Canaries on one route.

Both are invisible one file at a time. A second object with the same kind, namespace and name
silently replaces the first on `kubectl apply`; two Canaries moving the weights of one route
would undo each other's steps at every tick.
"""

from __future__ import annotations

import collections

from canary.api.resources import Canary
from canary.validation import crosscheck
from canary.validation.findings import About, Finding
from canary.validation.inventory import Index, Inventory, Key, Placed, istio_key, model_key

# The other Canaries a shared-route finding names before it counts the rest.
_NAMED = 3


def duplicates(inventory: Inventory) -> list[Finding]:
    """A finding on each later copy, pointing at the first (the one the other checks use)."""
    found: list[Finding] = []
    for kind, keyed in (
        ("Canary", [(model_key(p.obj), p) for p in inventory.canaries]),
        ("MetricTemplate", [(model_key(p.obj), p) for p in inventory.templates]),
        ("VirtualService", [(istio_key(p), p) for p in inventory.virtual_services]),
        ("DestinationRule", [(istio_key(p), p) for p in inventory.destination_rules]),
    ):
        first: dict[Key, Placed[object]] = {}
        for key, placed in keyed:
            if key in first:
                message = f"{kind} {key[0]}/{key[1]} is defined again (first at {first[key].where})"
                found.append(Finding(placed.where, "metadata.name", message))
            else:
                first[key] = placed
    return found


def shared_routes(canaries: list[Placed[Canary]], index: Index) -> list[Finding]:
    """A finding on each Canary that shares its route, naming the others and where they are.

    When the VirtualService is not in the paths, routes are compared as the Canaries name them.
    Each line names at most `_NAMED` of the others, then counts the rest.
    A second copy of one Canary is left to `duplicates`: it is the same Canary, not a rival.
    """
    groups: dict[tuple[str, str, str], list[Placed[Canary]]] = collections.defaultdict(list)
    seen: set[Key] = set()
    for placed in canaries:
        if model_key(placed.obj) in seen:
            continue
        seen.add(model_key(placed.obj))
        (namespace, name), route = crosscheck.managed_route(placed.obj, index)
        label = route.label if route else placed.obj.spec.service.route or "(default)"
        groups[(namespace, name, label)].append(placed)
    found: list[Finding] = []
    for (namespace, name, label), group in groups.items():
        if len(group) < 2:
            continue
        for placed in group:
            about = About(placed.where, f"Canary {'/'.join(model_key(placed.obj))}")
            about.add(
                "spec.service.route",
                f"VirtualService {namespace}/{name} route {label} is also managed by "
                f"{_others(placed, group)}",
            )
            found += about.findings
    return found


def _others(placed: Placed[Canary], group: list[Placed[Canary]]) -> str:
    """The first few other Canaries of the group and how many more: a line per Canary stays
    short, and the whole report linear, however many share the route."""
    named: list[str] = []
    for other in group:
        if len(named) == _NAMED:
            break
        if other is not placed:
            named.append(f"Canary {'/'.join(model_key(other.obj))} ({other.where})")
    more = len(group) - 1 - len(named)
    return ", ".join(named) + (f" and {more} more" if more else "")
