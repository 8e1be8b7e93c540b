"""A check that compares the canary with stable: the spec's `compare`, and the test's state and
record in the status.

`compare` asks for a sequential, anytime-valid test of bad events (5xx, requests slower than a
bound, any counter a template names) on both sides, in place of or beside a fixed threshold:
the statistics are in `engine/sequential.py`. Its state lives in the status (`SequentialState`,
one per comparing check) because the test's error bound holds only for one test carried through
the whole rollout: a restarted controller that started over would spend a fresh alpha on the
same canary. The state is bounded: a fixed grid of log likelihood ratios and a few counts,
whatever the number of ticks.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from canary.api import durations
from canary.api.base import Model

# The highest minEffect: equivalence "within 10x" already says nothing a user would act on.
MAX_MIN_EFFECT = 10.0
MAX_ALPHA = 0.2

# A latency bound: a histogram bucket's `le`, from a millisecond to an hour.
LatencyBound = Annotated[
    str,
    AfterValidator(durations.within("1ms", "1h")),
    Field(pattern=durations.PATTERN, examples=["250ms", "1s"]),
    WithJsonSchema({"type": "string", "pattern": durations.PATTERN}),
]


class Comparison(Model):
    """Compare the canary's rate of bad events with stable's, sequentially, at a stated alpha."""

    against: Literal["stable"] = Field(
        default="stable", description="The side compared with: stable (the only one)."
    )
    alpha: float = Field(
        default=0.01,
        gt=0,
        le=MAX_ALPHA,
        allow_inf_nan=False,
        description="The bound on the probability of ever calling a regression when the canary "
        f"is no worse than stable, however often it is looked at (0 < alpha <= {MAX_ALPHA}).",
    )
    min_effect: float = Field(
        default=1.5,
        gt=1,
        le=MAX_MIN_EFFECT,
        allow_inf_nan=False,
        description="The ratio of the canary's rate to stable's that matters: equivalence is "
        "shown once the canary is proven less than minEffect times worse (1 < minEffect <= "
        f"{MAX_MIN_EFFECT:g}).",
    )
    slower_than: LatencyBound | None = Field(
        default=None,
        description="For a latency check (request-duration, trace-duration): a request slower "
        "than this is a bad event. It must be a bucket bound (le) of the histogram (1ms..1h).",
    )

    @property
    def slower_than_seconds(self) -> float | None:
        return durations.seconds(self.slower_than) if self.slower_than else None


class ComparisonVerdict(StrEnum):
    # The e-value against "canary no worse than stable" reached 1/alpha.
    REGRESSION = "regression"
    # The e-value against "canary worse by minEffect or more" reached 1/alpha.
    EQUIVALENT = "equivalent"
    UNDECIDED = "undecided"


class SequentialState(Model):
    """One comparing check's test, carried through a rollout so a restarted controller resumes it.

    The step's counts are the cumulative counts since the step's clock started (`since`) as last
    read, so that the next reading adds only what is new; the totals are the rollout's.
    `logEvidence` holds, for each point of the engine's fixed grid of rate ratios, the log
    likelihood ratio of that ratio against 1 over everything seen; `logEvidenceMinEffect` the
    same at minEffect.
    """

    name: str = Field(description="The check's name.")
    revision: str = Field(description="The revision the test judges; a new one starts over.")
    alpha: float = Field(description="The alpha the test runs at.")
    min_effect: float = Field(description="The minEffect the test runs at.")
    step: int = Field(ge=0, description="The step the step counts belong to.")
    since: datetime | None = Field(
        default=None,
        description="When the window of the step counts began (the step's clock start); unset "
        "before the first reading.",
    )
    step_canary_requests: float = Field(ge=0, description="Canary requests since the step began.")
    step_canary_bad: float = Field(ge=0, description="Canary bad events since the step began.")
    step_stable_requests: float = Field(ge=0, description="Stable requests since the step began.")
    step_stable_bad: float = Field(ge=0, description="Stable bad events since the step began.")
    canary_requests: float = Field(ge=0, description="Canary requests in the rollout.")
    canary_bad: float = Field(ge=0, description="Canary bad events in the rollout.")
    stable_requests: float = Field(ge=0, description="Stable requests in the rollout.")
    stable_bad: float = Field(ge=0, description="Stable bad events in the rollout.")
    log_evidence: tuple[float, ...] = Field(
        max_length=64,
        description="The log likelihood ratio against a ratio of 1 at each point of the "
        "engine's grid of ratios.",
    )
    log_evidence_min_effect: float = Field(description="The same at the ratio minEffect.")
    verdict: ComparisonVerdict = Field(description="regression, equivalent or undecided.")
    decided_after: float | None = Field(
        default=None, description="Canary requests seen when the verdict was reached."
    )


class RateEstimate(Model):
    """One side's rate of bad events with its confidence sequence (valid at every look)."""

    requests: float = Field(description="Requests seen in the rollout.")
    bad: float = Field(description="Of those, bad events.")
    rate: float | None = Field(default=None, description="bad / requests; unset before any.")
    low: float = Field(description="The interval's lower end (a fraction).")
    high: float = Field(description="The interval's upper end (a fraction).")


class ComparisonRecord(Model):
    """What a comparing check saw at one tick: the verdict, the evidence, the two estimates."""

    verdict: ComparisonVerdict = Field(description="regression, equivalent or undecided.")
    regression_evidence: float = Field(
        description="The e-value against 'the canary is no worse than stable'; a regression is "
        "proven once it reaches 1/alpha."
    )
    equivalence_evidence: float = Field(
        description="The e-value against 'the canary is worse by minEffect or more'; "
        "equivalence is shown once it reaches 1/alpha."
    )
    threshold: float = Field(description="1/alpha.")
    canary: RateEstimate = Field(description="The canary's rate of bad events.")
    stable: RateEstimate = Field(description="Stable's rate of bad events.")
    decided_after: float | None = Field(
        default=None, description="Canary requests seen when the verdict was reached."
    )
    message: str = Field(default="", description="Counts refused, if any, and why.")
