"""`Canary.spec.chaos[]`: fault experiments that prove the mesh protects callers from the canary.

An experiment injects a fault on the server side of the canary's pods (so the callers' Envoys
see real upstream failures and their outlier detection can act), holds it for `duration`, and
then judges what the callers saw. The rules that need the rest of the spec (the weight is one of
the steps, the experiment fits in a step, only the canary subset is targeted) are checked in
spec.py, where the whole spec is known.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from canary.api import durations
from canary.api.base import Duration, Model

# Istio's own bound for an injected abort (HTTPFaultInjection.Abort.httpStatus).
_MIN_STATUS, _MAX_STATUS = 200, 599


class Abort(Model):
    http_status: int = Field(
        ge=_MIN_STATUS, le=_MAX_STATUS, description="The status the canary answers with."
    )
    percentage: float = Field(
        gt=0, le=100, description="The share of requests aborted, in percent (0 < p <= 100)."
    )


class Delay(Model):
    fixed_delay: Duration = Field(description="How long each delayed request waits.")
    percentage: float = Field(
        gt=0, le=100, description="The share of requests delayed, in percent (0 < p <= 100)."
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

    def describe(self) -> str:
        parts = []
        if self.abort is not None:
            parts.append(f"abort {self.abort.http_status} to {self.abort.percentage:g}%")
        if self.delay is not None:
            parts.append(f"delay {self.delay.fixed_delay} to {self.delay.percentage:g}%")
        return ", ".join(parts)


class Expect(Model):
    """What must hold for the experiment to pass; every part given must hold."""

    ejection: bool = Field(
        default=True,
        description="The callers' outlier detection ejects a canary host within the duration.",
    )
    success_rate: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="The lowest success rate (percent) the callers may see during the fault.",
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


class Experiment(Model):
    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=40,
        description="A name unique among the experiments (it names the injected fault).",
    )
    at_weight: int = Field(
        ge=1,
        le=100,
        description="Run at the step with this canary weight, once its checks passed and "
        "before it advances.",
    )
    duration: Duration = Field(description="How long the fault stays; at most a step's interval.")
    subset: str | None = Field(
        default=None,
        description="The subset the fault goes to; it must be the canary subset (the default).",
    )
    fault: Fault = Field(description="What to inject on the canary's server side.")
    expect: Expect = Field(default_factory=Expect, description="What must hold.")
    on_failure: Literal["rollback", "continue"] = Field(
        default="rollback",
        description="rollback: a failed experiment rolls the canary back. continue: it is "
        "reported, and the rollout goes on.",
    )

    @property
    def duration_seconds(self) -> float:
        return durations.seconds(self.duration)
