"""`Canary.spec.chaos[]`: fault experiments that prove the mesh protects callers from the canary.

An experiment injects a fault on the server side of the canary's pods (so the callers' Envoys
see real upstream failures and their outlier detection can act), holds it for `duration`, and
then judges what the callers saw. The rules that need the rest of the spec (the weight is one of
the steps, the experiment fits in a step, only the canary subset is targeted) are checked in
spec.py, where the whole spec is known.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from canary.api import durations
from canary.api.base import Duration, FaultDelay, Finite, Model

# Envoy's finest fraction is one in a million: anything smaller would be injected as 0.
_MIN_PERCENT = 0.0001
# Istio's own bound for an injected abort (HTTPFaultInjection.Abort.httpStatus).
_MIN_STATUS, _MAX_STATUS = 200, 599


class Abort(Model):
    http_status: int = Field(
        ge=_MIN_STATUS, le=_MAX_STATUS, description="The status the canary answers with (200..599)."
    )
    percentage: Finite = Field(
        ge=_MIN_PERCENT,
        le=100,
        description="The share of requests aborted, in percent (0.0001 <= p <= 100).",
    )


class Delay(Model):
    fixed_delay: FaultDelay = Field(description="How long each delayed request waits (1ms..1h).")
    percentage: Finite = Field(
        ge=_MIN_PERCENT,
        le=100,
        description="The share of requests delayed, in percent (0.0001 <= p <= 100).",
    )

    @property
    def seconds(self) -> float:
        return durations.seconds(self.fixed_delay)


class Fault(Model):
    abort: Abort | None = Field(default=None, description="Answer with an error status.")
    delay: Delay | None = Field(default=None, description="Hold requests before answering.")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.abort is None and self.delay is None:
            raise ValueError("a fault needs abort and/or delay")
        return self


class Expect(Model):
    """What must hold for the experiment to pass; every part given must hold."""

    ejection: bool = Field(
        default=True,
        description="The callers' outlier detection ejects a canary host within the duration.",
    )
    success_rate: Finite | None = Field(
        default=None,
        ge=0,
        le=100,
        description="The lowest success rate (percent, 0..100) the callers may see during the "
        "fault.",
    )
    overflow: bool = Field(
        default=False,
        description="The callers' circuit breaker sheds load: pending-request overflow is seen.",
    )

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.ejection and self.success_rate is None and not self.overflow:
            raise ValueError("expect: nothing to check; set ejection, successRate and/or overflow")
        return self

    def describe(self) -> str:
        parts = []
        if self.ejection:
            parts.append("a canary host ejected")
        if self.success_rate is not None:
            parts.append(f"caller success rate >= {self.success_rate:g}%")
        if self.overflow:
            parts.append("pending overflow seen")
        return ", ".join(parts)


_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# One EnvoyFilter patch per chosen pod: a bound keeps that object within the API server's size.
MAX_PODS = 1000
OnFailure = Literal["rollback", "continue"]


class Trial(Model):
    """What one experiment injects, for how long, what must hold, and what a failure does."""

    name: str = Field(
        pattern=_NAME,
        max_length=40,
        description="A name unique among the experiments (it names the injected fault).",
    )
    duration: Duration = Field(
        description="How long the fault stays (1s..24h); at most a step's interval."
    )
    fault: Fault = Field(description="What to inject on the canary's server side.")
    pods: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PODS,
        description=f"How many of the canary's pods get the fault (1..{MAX_PODS}, the first by "
        "name); default all. With one bad pod of several, outlier detection can take it out of "
        "the callers' pool and spare users; with every pod bad, only the weights can.",
    )
    expect: Expect = Field(default_factory=Expect, description="What must hold.")
    on_failure: OnFailure = Field(
        default="rollback",
        description="rollback: a failed experiment rolls the canary back. continue: it is "
        "reported, and the rollout goes on.",
    )

    @property
    def duration_seconds(self) -> float:
        return durations.seconds(self.duration)

    def trial(self) -> Trial:
        """Just the trial's own fields, whatever kind of experiment this is."""
        return Trial.model_validate(self.model_dump(include=set(Trial.model_fields)))


class Experiment(Trial):
    """An experiment the spec declares: it runs at one step of every rollout."""

    at_weight: int = Field(
        ge=1,
        le=100,
        description="Run at the step with this canary weight (1..100), once its checks passed "
        "and before it advances.",
    )
    subset: str | None = Field(
        default=None,
        description="The subset the fault goes to; it must be the canary subset (the default).",
    )


# Where `canary chaos` asks the controller for a one-off experiment: on the Canary's metadata,
# so it changes neither the spec nor the revision, and the controller (the only one that writes
# faults) runs it like any other, with the same safety.
REQUEST_ANNOTATION = "canary.dev/chaos-request"


class ChaosRequest(Trial):
    """A one-off experiment asked for by `canary chaos`, for the rollout in progress."""

    revision: str = Field(
        min_length=1, description="The rollout it is meant for; any other ignores it."
    )
    on_failure: OnFailure = Field(
        default="continue",
        description="continue (the default for a one-off): report only. rollback: a failed "
        "experiment rolls the canary back.",
    )


def request_of(metadata: Mapping[str, Any]) -> ChaosRequest | None:
    """The one-off experiment a Canary's annotations ask for; None when none, or unreadable.

    `canary chaos` validates a request before it writes it, so an unreadable one was written
    by hand; it is ignored rather than allowed to make the Canary itself invalid.
    """
    annotations = metadata.get("annotations") or {}
    text = annotations.get(REQUEST_ANNOTATION) if isinstance(annotations, Mapping) else None
    if not isinstance(text, str):
        return None
    return _parsed_request(text)


@functools.lru_cache(maxsize=256)
def _parsed_request(text: str) -> ChaosRequest | None:
    try:
        return ChaosRequest.model_validate_json(text)
    except ValueError:
        return None
