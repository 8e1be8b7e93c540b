"""Owner references to a Canary: on the objects canary makes for it (the fault EnvoyFilters),
so a cluster's garbage collector removes them with it, and the controller finds them by it."""

from __future__ import annotations

from canary.adapters.kube.rest import CANARY, Body
from canary.ports import Owner


def reference(owner: Owner) -> Body:
    """The Canary as the owner of a fault. `controller: true` says canary manages the object;
    no blockOwnerDeletion, which would need update on canaries/finalizers and hold a
    foreground deletion of the Canary until the collector removed the fault."""
    return {
        "apiVersion": CANARY.api_version,
        "kind": CANARY.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
    }


def names(body: Body) -> set[str]:
    """The names of the Canaries that own `body`."""
    references = (body.get("metadata") or {}).get("ownerReferences") or []
    return {
        str(entry.get("name"))
        for entry in references
        if isinstance(entry, dict)
        and entry.get("kind") == CANARY.kind
        and str(entry.get("apiVersion", "")).startswith(f"{CANARY.group}/")
    }
