"""The top-level `Canary` resource and parsing of any canary.dev document by its kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from canary.api import API_VERSION
from canary.api.base import Model, ObjectMeta
from canary.api.chat_provider import ChatProvider
from canary.api.metric_template import MetricTemplate
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus


class Canary(Model):
    """A progressive rollout of one service: traffic moves from stable to canary in judged steps."""

    api_version: Literal["canary.dev/v1alpha1"] = Field(
        default=API_VERSION, description="canary.dev/v1alpha1"
    )
    kind: Literal["Canary"] = Field(default="Canary", description="Canary")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: CanarySpec = Field(description="What to roll out and how to judge it.")
    status: CanaryStatus | None = Field(default=None, description="Written by the controller.")


KINDS: dict[str, type[Canary] | type[MetricTemplate] | type[ChatProvider]] = {
    "Canary": Canary,
    "MetricTemplate": MetricTemplate,
    "ChatProvider": ChatProvider,
}


def parse(document: Mapping[str, Any]) -> Canary | MetricTemplate | ChatProvider:
    """The model of a canary.dev document; pydantic's ValidationError when it is invalid."""
    kind = document.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValueError(f"kind: {kind!r} is not a canary.dev kind (known: {', '.join(KINDS)})")
    return model.model_validate(document)
