"""Trace SLOs: a MetricTemplate's `jaeger` backend, and what a judged trace check records.

A trace check asks Jaeger for the spans of one operation of one service in the check's window,
once for the canary's version and, when the template compares, once for the stable's, told
apart by a span tag the template names (Istio's sidecars tag spans `istio.canonical_revision`;
the local mesh's Envoys tag them `subset`). The value is the error ratio of those spans in
percent, or a percentile of their durations in milliseconds, the units of the built-in
request-success-rate and request-duration checks; with `compare`, it is the canary's value less
the stable's, or over it. Fewer spans than `minSpans` is no data, never a pass.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from canary.api import templating
from canary.api.base import HTTP_ADDRESS, CallTimeout, Model, http_address

# Jaeger's query API caps nothing by itself; the memory store holds every trace of the window.
# A bound keeps one check's answer (whole traces, every span of each) to a few megabytes.
MAX_TRACES = 5_000
MAX_MIN_SPANS = 100_000


class SpanCompute(StrEnum):
    ERROR_RATIO = "errorRatio"
    LATENCY = "latency"


class Comparison(StrEnum):
    DIFFERENCE = "difference"
    RATIO = "ratio"


class JaegerProvider(Model):
    """Jaeger's query API (`/api/traces`), asked for one operation's spans per version."""

    address: str = Field(
        pattern=HTTP_ADDRESS,
        description="The base URL of Jaeger's query service, e.g. "
        "http://jaeger-query.observability:16686.",
    )
    service: str = Field(
        default="{{ service }}",
        min_length=1,
        description="The service whose spans are judged, as the tracer names it (a template; "
        "default: the Canary's service).",
    )
    operation: str = Field(
        min_length=1,
        description="The operation (span name) judged, e.g. `POST /checkout` (a template).",
    )
    version_tag: str = Field(
        min_length=1,
        description="The span tag that tells the versions apart: istio.canonical_revision for "
        "Istio's sidecars, subset for the local mesh's Envoys.",
    )
    version_value: str = Field(
        default="{{ version }}",
        min_length=1,
        description="The tag's value for a version (a template, rendered with the canary's "
        "variables and, to compare, with the stable's); default: {{ version }}.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="More span tags a judged span must carry (values are templates).",
    )
    compute: SpanCompute = Field(
        description="errorRatio: the percentage of the spans that are errors. latency: the "
        "`percentile` of the spans' durations, in milliseconds."
    )
    percentile: float | None = Field(
        default=None,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="For compute: latency, the percentile in (0, 100], e.g. 99.",
    )
    compare: Comparison | None = Field(
        default=None,
        description="Judge the canary against the stable version over the same window: "
        "difference (canary - stable) or ratio (canary / stable). Unset: the canary's value.",
    )
    min_spans: int = Field(
        default=20,
        ge=1,
        le=MAX_MIN_SPANS,
        description="Fewer matching spans than this (for either version judged) is no data, "
        f"never a pass (1..{MAX_MIN_SPANS}).",
    )
    limit: int = Field(
        default=1_000,
        ge=1,
        le=MAX_TRACES,
        description="At most this many traces per version per check (Jaeger's `limit`); when "
        "the window holds more, the newest are judged and the status says it was a sample "
        f"(1..{MAX_TRACES}).",
    )
    timeout: CallTimeout = Field(
        default="10s",
        description="How long one query to Jaeger may take (100ms..10m); slower is an error, "
        "never a pass.",
    )

    @field_validator("address", mode="before")
    @classmethod
    def _a_url(cls, value: Any) -> Any:
        return http_address(value, "http://jaeger-query.observability:16686")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.compute is SpanCompute.LATENCY and self.percentile is None:
            raise ValueError("percentile: compute latency needs a percentile in (0, 100], e.g. 99")
        if self.compute is SpanCompute.ERROR_RATIO and self.percentile is not None:
            raise ValueError(
                "percentile: only compute latency takes a percentile (errorRatio is the share "
                "of error spans)"
            )
        if self.version_tag in self.tags:
            raise ValueError(
                f"tags: {self.version_tag!r} is the versionTag; its value comes from versionValue"
            )
        for text in self.templated():
            if text.count("{{") != text.count("}}"):
                raise ValueError(f"unbalanced {{{{ }}}} in {text!r}")
        for field, text in self._templated_fields():
            refused = templating.problems(text)
            if refused:
                raise ValueError(f"{field}: {'; '.join(refused)}")
        if not templating.variables(self.version_value) & {"subset", "version"}:
            raise ValueError(
                f"versionValue: {self.version_value!r} names no version: without {{{{ subset }}}} "
                "or {{ version }} in it, the canary's spans and the stable's are the same ones"
            )
        return self

    def templated(self) -> tuple[str, ...]:
        """Every field a rendering fills in."""
        return (self.service, self.operation, self.version_value, *self.tags.values())

    def _templated_fields(self) -> list[tuple[str, str]]:
        named = [
            ("service", self.service),
            ("operation", self.operation),
            ("versionValue", self.version_value),
        ]
        return named + [(f"tags.{name}", value) for name, value in self.tags.items()]

    def variables(self) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for text in self.templated():
            found |= templating.variables(text)
        return found


class SpanEvidence(Model):
    """What a trace check judged, so a person can open the spans behind a verdict."""

    operation: str = Field(description="The operation judged, variables resolved.")
    spans: int = Field(description="The canary's spans judged.")
    sampled: bool = Field(
        default=False,
        description="True when the window held more traces than the template's limit and the "
        "newest were judged.",
    )
    examples: list[str] = Field(
        default_factory=list,
        description="Trace IDs of the canary's worst spans (slowest, or errors first).",
    )
    canary_value: float | None = Field(
        default=None, description="The canary's own value when the check compares."
    )
    stable_value: float | None = Field(
        default=None, description="The stable version's value when the check compares."
    )
    stable_spans: int | None = Field(
        default=None, description="The stable version's spans judged when the check compares."
    )
