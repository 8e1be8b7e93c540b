"""What the paths hold: each object with the file and document it came from.

The cross-checks run on this, not on files, so they are plain functions of objects; the place
travels with each object only so that a finding can point back at the document to edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.validation.findings import Where

T_co = TypeVar("T_co", covariant=True)
# Istio objects stay the dicts they were read as: the controller passes them through untouched,
# so modelling their specs would only invent a second, stale idea of what Istio accepts.
IstioObject = dict[str, Any]
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class Placed(Generic[T_co]):
    where: Where
    obj: T_co


@dataclass(slots=True)
class Inventory:
    canaries: list[Placed[Canary]] = field(default_factory=list)
    templates: list[Placed[MetricTemplate]] = field(default_factory=list)
    virtual_services: list[Placed[IstioObject]] = field(default_factory=list)
    destination_rules: list[Placed[IstioObject]] = field(default_factory=list)


def namespace_of(metadata: Any) -> str:
    """The namespace an object is applied to; without one, kubectl's default namespace."""
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE


def key_of(body: IstioObject) -> tuple[str, str]:
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return namespace_of(metadata), str(name)
