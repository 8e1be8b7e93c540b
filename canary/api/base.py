"""The base of every resource model: camelCase on the wire, unknown fields rejected, frozen.

Frozen because the engine computes a new status from an old one and must never mutate what the
controller holds: transitions return new values (kopf's `HandlerState` does the same).
"""

from __future__ import annotations

import re
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


# A duration field keeps its text and is refused outside its bounds. Each is said in the field's
# description, since the CRD's pattern cannot say it: the API server admits `100000000h`, and the
# controller turns it into an Invalid condition with the same line `canary validate` prints.
_PATTERN = Field(pattern=durations.PATTERN, examples=["30s", "1m", "1h30m"])
# A chain of validators shows only its first step in a validation-mode JSON schema, which would
# drop the pattern from the CRD; say the schema outright.
_SCHEMA = WithJsonSchema({"type": "string", "pattern": durations.PATTERN})

# Most durations: a step, a check, a query window, a wait for data, an experiment.
Duration = Annotated[str, AfterValidator(durations.within("1s", "24h")), _PATTERN, _SCHEMA]
# How long a phase may wait for the world (progressDeadline): up to a few days.
Deadline = Annotated[str, AfterValidator(durations.within("1s", "72h")), _PATTERN, _SCHEMA]
# How long something is kept before it is cleaned up (scaleDownAfter): up to a week.
Retention = Annotated[str, AfterValidator(durations.within("1s", "168h")), _PATTERN, _SCHEMA]
# One webhook call, which a tick waits for.
CallTimeout = Annotated[str, AfterValidator(durations.within("100ms", "10m")), _PATTERN, _SCHEMA]
# An injected delay: Istio's own floor is 1ms.
FaultDelay = Annotated[str, AfterValidator(durations.within("1ms", "1h")), _PATTERN, _SCHEMA]
# A measured or threshold number: NaN and the infinities are refused (a range bound of NaN or
# .inf can never be met, and JSON, hence the API server, cannot even hold one).
Finite = Annotated[float, Field(allow_inf_nan=False)]


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


# A backend's base URL: http(s), a host, any path.
HTTP_ADDRESS = r"^https?://[^\s/]+(/.*)?$"


def http_address(value: Any, example: str) -> Any:
    """Refuses a text that is no http(s) URL with a line that shows the fix (the pattern's own
    message would show a regular expression)."""
    if isinstance(value, str) and not re.match(HTTP_ADDRESS, value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL (e.g. {example})")
    return value
