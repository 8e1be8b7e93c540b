"""What a Canary measures: metric checks, their thresholds, and what to do without data.

The no-data rules exist because the commonest canary failure in the field is a query that returns
nothing (no traffic yet, a dropped label, Prometheus down) being read as a pass or as 0
(flagger#1365, flagger#1095, argo-rollouts#4479). Here unknown data is never a pass: `onNoData`
says whether it fails at once or may wait, for a bounded time, for data to arrive.
"""

from __future__ import annotations

import difflib
import functools
import math
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from canary.api import builtins
from canary.api.base import Duration, Finite, Model
from canary.api.comparison import Comparison


class NoDataPolicy(StrEnum):
    FAIL = "fail"
    WAIT = "wait"


class MetricMode(StrEnum):
    ENFORCE = "enforce"
    OBSERVE = "observe"


# The most requests minRequests may ask for: more than any window of a real service holds.
MAX_MIN_REQUESTS = 1_000_000_000


class ThresholdRange(Model):
    """The range a metric value must fall in to pass; either bound may be left open.

    Bounds are finite numbers (NaN and the infinities are refused: a bound of NaN can never be
    met). A measured +Inf or -Inf never passes (engine/judge.py says why).
    """

    min: Finite | None = Field(
        default=None, description="The lowest passing value (inclusive); a finite number."
    )
    max: Finite | None = Field(
        default=None, description="The highest passing value (inclusive); a finite number."
    )

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("set at least one of min and max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        return self

    def holds(self, value: float) -> bool:
        low, high = self.min, self.max
        inside = (low is None or value >= low) and (high is None or value <= high)
        return inside and math.isfinite(value)

    def describe(self) -> str:
        return _describe(self.min, self.max)


@functools.lru_cache(maxsize=1024)
def _describe(low: float | None, high: float | None) -> str:
    # Cached: every judged measurement records its threshold, on the engine's hot path.
    if low is not None and high is not None:
        return f"{low:g}..{high:g}"
    if low is not None:
        return f">= {low:g}"
    return f"<= {high:g}"


class TemplateRef(Model):
    name: str = Field(min_length=1, description="The MetricTemplate's name.")
    namespace: str | None = Field(
        default=None, description="The MetricTemplate's namespace; default: the Canary's."
    )


class MetricCheck(Model):
    """One SLO judged at every check of a step."""

    name: str = Field(
        min_length=1,
        description="A built-in check (request-success-rate, request-duration; from span "
        "metrics, trace-error-rate and trace-duration, with templateVariables.operation) or any "
        "name when templateRef is set.",
    )
    threshold_range: ThresholdRange | None = Field(
        default=None,
        description="The range a passing value lies in, bounds finite; required unless compare "
        "is set. A measured +Inf or -Inf "
        "(PromQL's x/0) never passes: it fails the bound it is beyond, and an open side too. "
        "histogram_quantile answers the largest finite bucket bound, not +Inf, when requests are "
        "slower than every bucket: keep a latency max below that bound.",
    )
    interval: Duration = Field(
        default="1m",
        description="The query window, substituted for {{ interval }} (not the check schedule; "
        "1s..24h).",
    )
    template_ref: TemplateRef | None = Field(
        default=None, description="The MetricTemplate holding the query; none for a built-in."
    )
    template_variables: dict[str, str] = Field(
        default_factory=dict, description="Extra variables for the query template."
    )
    on_no_data: NoDataPolicy = Field(
        default=NoDataPolicy.FAIL,
        description="fail: no data, NaN, an error or too few requests is a failed check. wait: "
        "such a check is inconclusive until noDataTimeout has passed in the step, then fails.",
    )
    no_data_timeout: Duration | None = Field(
        default=None,
        description="How long onNoData: wait may wait within a step (1s..24h); default: "
        "analysis.interval.",
    )
    min_requests: int | None = Field(
        default=None,
        ge=0,
        le=MAX_MIN_REQUESTS,
        description="Fewer requests than this in the window make the value inconclusive, judged "
        f"like no data, so a step is never judged on three requests (0..{MAX_MIN_REQUESTS}).",
    )
    mode: MetricMode = Field(
        default=MetricMode.ENFORCE,
        description="enforce: the verdict counts. observe: measured and reported, never counted.",
    )
    compare: Comparison | None = Field(
        default=None,
        description="Compare the canary's rate of bad events with stable's by a sequential test "
        "that may be looked at every tick (beside or instead of thresholdRange): a proven "
        "regression rolls back at once; shown equivalence may advance early (advanceEarly). "
        "For a built-in, bad events are 5xx or errors, or for a latency check requests slower "
        "than compare.slowerThan; for a template, its query counts the bad events and its "
        "requestsQuery the requests, each rendered once per side.",
    )

    @model_validator(mode="after")
    def _resolvable(self) -> Self:
        self._comparable()
        if self.template_ref is None and self.name not in builtins.NAMES:
            known = ", ".join(sorted(builtins.NAMES))
            close = difflib.get_close_matches(self.name, sorted(builtins.NAMES), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(
                f"name: {self.name!r} is not a built-in metric{hint}; built-ins: {known}; "
                "set templateRef to use a MetricTemplate"
            )
        if (
            self.template_ref is None
            and self.name in builtins.PER_OPERATION
            and not self.template_variables.get(builtins.OPERATION)
        ):
            raise ValueError(
                f"templateVariables: {self.name} judges one operation; name its span name as "
                f"templateVariables.{builtins.OPERATION} (e.g. POST /checkout)"
            )
        return self

    def _comparable(self) -> None:
        compare = self.compare
        if compare is None:
            if self.threshold_range is None:
                raise ValueError(
                    "thresholdRange: required unless compare is set (e.g. thresholdRange: "
                    "{min: 99}, or compare: {against: stable})"
                )
            return
        latency = self.template_ref is None and self.name in builtins.LATENCY
        if latency and compare.slower_than is None:
            raise ValueError(
                f"compare.slowerThan: {self.name} is compared as the share of requests slower "
                "than a bound; name one of the histogram's bucket bounds, e.g. 250ms"
            )
        if not latency and compare.slower_than is not None:
            what = (
                "a template's query counts its own bad events"
                if self.template_ref
                else (f"{self.name} is no latency check")
            )
            raise ValueError(
                f"compare.slowerThan: only request-duration and trace-duration count slow "
                f"requests; {what}"
            )
