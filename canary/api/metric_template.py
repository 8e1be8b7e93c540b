"""`MetricTemplate`: a named, reusable query, referenced by a Canary's metric `templateRef`.

Provider configuration follows Argo's shape: one optional sub-model per backend with exactly one
set, which keeps the CRD schema structural and makes an unknown provider a validation error
instead of a silent fallback to Prometheus.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from canary.api import API_VERSION, templating
from canary.api.base import Model, ObjectMeta

# Variables every rendering provides; a template may also use the Canary's templateVariables.
STANDARD_VARIABLES = frozenset({"namespace", "service", "subset", "version", "interval"})


class Provider(Model):
    type: Literal["prometheus"] = Field(description="The backend that runs the query.")
    address: str = Field(
        pattern=r"^https?://[^\s/]+(/.*)?$",
        description="The backend's base URL, e.g. http://prometheus.istio-system:9090.",
    )


class MetricTemplateSpec(Model):
    provider: Provider = Field(description="Where the query runs.")
    query: str = Field(
        min_length=1,
        description="The query, with {{ namespace }}, {{ service }}, {{ subset }}, "
        "{{ version }}, {{ interval }} and the Canary's templateVariables.",
    )
    requests_query: str | None = Field(
        default=None,
        description="A query for the number of requests in the window, for minRequests.",
    )

    @model_validator(mode="after")
    def _well_formed(self) -> Self:
        for text in (self.query, self.requests_query or ""):
            if text.count("{{") != text.count("}}"):
                raise ValueError("unbalanced {{ }} in the query")
        return self

    def custom_variables(self) -> frozenset[str]:
        used = templating.variables(self.query) | templating.variables(self.requests_query or "")
        return used - STANDARD_VARIABLES


class MetricTemplate(Model):
    """A named, reusable query that a Canary's metric check refers to by templateRef."""

    api_version: Literal["canary.dev/v1alpha1"] = Field(
        default=API_VERSION, description="canary.dev/v1alpha1"
    )
    kind: Literal["MetricTemplate"] = Field(default="MetricTemplate", description="MetricTemplate")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: MetricTemplateSpec = Field(description="The query and where it runs.")
