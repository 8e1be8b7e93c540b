"""The base of every resource model: camelCase on the wire, unknown fields rejected, frozen.

Frozen because the engine computes a new status from an old one and must never mutate what the
controller holds: transitions return new values (kopf's `HandlerState` does the same).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from canary.api import durations


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


Duration = Annotated[
    str,
    AfterValidator(durations.check),
    Field(pattern=durations.PATTERN, examples=["30s", "1m", "1h30m"]),
    # A chain of validators shows only its first step in a validation-mode JSON schema, which
    # would drop the pattern from the CRD; say the schema outright.
    WithJsonSchema({"type": "string", "pattern": durations.PATTERN}),
]


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata that canary reads; the rest is kept as it came."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(
        min_length=1,
        max_length=253,
        # The API server's rule for most kinds (a DNS-1123 subdomain); refused here, not at apply.
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="The object's name.",
    )
    namespace: str | None = Field(default=None, description="The object's namespace.")
    generation: int | None = Field(default=None, description="Set by the API server.")
