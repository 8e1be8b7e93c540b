"""What the paths hold: each object with the file and document it came from, and an index.

The cross-checks run on this, not on files, so they are plain functions of objects; the place
travels with each object only so that a finding can point back at the document to edit.
Objects are keyed by (namespace, name), a missing namespace being kubectl's `default`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from canary.api.chat_provider import ChatProvider
from canary.api.istio import IstioObject
from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.validation.findings import Where

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Key = tuple[str, str]

DEFAULT_NAMESPACE = "default"
_LISTED = 8


@dataclass(frozen=True, slots=True)
class Placed(Generic[T_co]):
    where: Where
    obj: T_co


@dataclass(slots=True)
class Inventory:
    canaries: list[Placed[Canary]] = field(default_factory=list)
    templates: list[Placed[MetricTemplate]] = field(default_factory=list)
    chat_providers: list[Placed[ChatProvider]] = field(default_factory=list)
    virtual_services: list[Placed[IstioObject]] = field(default_factory=list)
    destination_rules: list[Placed[IstioObject]] = field(default_factory=list)
    peer_authentications: list[Placed[IstioObject]] = field(default_factory=list)


@dataclass(slots=True)
class Index:
    """The objects by key; of two with the same key the first wins, as `duplicates` reports."""

    virtual_services: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    destination_rules: dict[Key, Placed[IstioObject]] = field(default_factory=dict)
    templates: dict[Key, Placed[MetricTemplate]] = field(default_factory=dict)
    chat_providers: dict[Key, Placed[ChatProvider]] = field(default_factory=dict)
    peer_authentications: dict[Key, Placed[IstioObject]] = field(default_factory=dict)

    @classmethod
    def of(cls, inventory: Inventory) -> Index:
        return cls(
            virtual_services=_first(inventory.virtual_services, istio_key),
            destination_rules=_first(inventory.destination_rules, istio_key),
            templates=_first(inventory.templates, lambda placed: model_key(placed.obj)),
            chat_providers=_first(inventory.chat_providers, lambda placed: model_key(placed.obj)),
            peer_authentications=_first(inventory.peer_authentications, istio_key),
        )


def model_key(obj: Canary | MetricTemplate | ChatProvider) -> Key:
    return (obj.metadata.namespace or DEFAULT_NAMESPACE, obj.metadata.name)


def istio_key(placed: Placed[IstioObject]) -> Key:
    metadata = placed.obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return namespace_of(metadata), str(name)


def namespace_of(metadata: Any) -> str:
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE


def not_found(key: Key, seen: Iterable[Key]) -> str:
    """`ns/name not found`, with the names that were seen, so a typo shows next to the right one."""
    seen = sorted(seen)
    here = [name for namespace, name in seen if namespace == key[0]]
    if here:
        others = f"in {key[0]}: {_some(here)}"
    else:
        others = f"none in {key[0]}; seen: {_some([f'{n}/{m}' for n, m in seen])}"
    return f"{key[0]}/{key[1]} not found ({others})"


def _some(names: list[str]) -> str:
    extra = len(names) - _LISTED
    return ", ".join(names[:_LISTED]) + (f" and {extra} more" if extra > 0 else "")


def _first(items: Iterable[Placed[T]], key: Callable[[Placed[T]], Key]) -> dict[Key, Placed[T]]:
    found: dict[Key, Placed[T]] = {}
    for item in items:
        found.setdefault(key(item), item)
    return found
