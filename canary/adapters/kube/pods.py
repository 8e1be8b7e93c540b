"""Which of the canary's pods a fault for some of them goes to: the first N by name.

An experiment with `pods: N` shows outlier detection sparing users from one bad pod, so the
fault must land on N pods' sidecars and no other. The pods are listed once, when the fault is
injected (not per tick, and never watched: a fault lives seconds to minutes, and the one-off
list is all the controller needs pods for). The choice is a function of the pods that exist,
so injecting the same experiment again picks the same pods while they exist; and when the
EnvoyFilter written before is still there, the pods it names are kept while they are alive,
so a pod with a lower name that appears meanwhile does not move the fault.

Alive means not being deleted and not finished. A Pending pod counts: its sidecar gets the
fault from istiod as soon as it connects, and preferring Running ones would make the choice
change as pods become ready.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from canary.adapters.kube.rest import POD, Body, Rest, list_items
from canary.errors import InvalidSpec

# Phases whose containers have all stopped for good: no sidecar there to take a fault.
_FINISHED = {"Succeeded", "Failed"}


def selector(labels: Mapping[str, str]) -> str:
    """The labelSelector for pods with all of `labels`."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def chosen(
    rest: Rest,
    namespace: str,
    labels: Mapping[str, str],
    count: int,
    *,
    subset: str,
    keep: Sequence[str] = (),
) -> tuple[str, ...]:
    """The names of the `count` pods of `subset` (with `labels`) a fault goes to, sorted; fewer
    if fewer are alive; InvalidSpec if none is. `keep` names the pods chosen before."""
    listed = list_items(rest, POD.path(namespace), label_selector=selector(labels))
    names = choose(listed, count, keep=keep)
    if not names:
        raise InvalidSpec(
            f"chaos: no pod of subset {subset} (labels {selector(labels)}) found in namespace "
            f"{namespace}; a fault for {count} pod{'s' if count > 1 else ''} needs one"
        )
    return names


def choose(listed: Iterable[Body], count: int, *, keep: Sequence[str] = ()) -> tuple[str, ...]:
    """The first `count` alive pods by name, those in `keep` first."""
    if count < 1:
        raise ValueError(f"a fault goes to at least one pod, not {count}")
    alive = sorted({name for pod in listed if (name := _alive_name(pod))})
    kept = [name for name in alive if name in set(keep)][:count]
    others = [name for name in alive if name not in kept]
    return tuple(sorted(kept + others[: count - len(kept)]))


def _alive_name(pod: Body) -> str | None:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    if (pod.get("status") or {}).get("phase") in _FINISHED:
        return None
    name = meta.get("name")
    return name if isinstance(name, str) and name else None
