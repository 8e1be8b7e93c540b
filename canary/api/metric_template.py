"""`MetricTemplate`: a named, reusable query, referenced by a Canary's metric `templateRef`.

Provider configuration follows Argo Rollouts' `MetricProvider` shape: one optional sub-model per
backend, exactly one set. The CRD schema stays structural, an unknown backend is a validation
error (never a silent fallback to Prometheus), and a second backend is one more sub-model here
and one more adapter, chosen by the sub-model's type (see controller/sources.py).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from canary.api import API_VERSION, templating
from canary.api.base import HTTP_ADDRESS, Model, ObjectMeta, http_address
from canary.api.secrets import SecretHeader, SecretKeyRef
from canary.api.traces import JaegerProvider

# Variables every rendering provides; a template may also use the Canary's templateVariables.
STANDARD_VARIABLES = frozenset({"namespace", "service", "subset", "version", "interval"})
# The variables that tell one side from the other: a comparison renders a query for each.
SIDE_VARIABLES = frozenset({"subset", "version"})
# PromQL's windowed rates, which a comparison's cumulative counts must not use.
_WINDOWED = re.compile(r"\b(rate|irate|increase)\s*\(")


class TLS(Model):
    ca_bundle: SecretKeyRef | None = Field(
        default=None,
        description="A Secret key holding the PEM certificates that sign the server's "
        "certificate (a private CA); default: the system's trust store.",
    )
    insecure_skip_verify: bool = Field(
        default=False,
        description="Accept any server certificate. Off by default; a managed Prometheus "
        "reached without verification can be impersonated, and its answers promote releases.",
    )


class PrometheusProvider(Model):
    """A Prometheus-compatible query API: Prometheus, Thanos, Cortex, Mimir, a cloud's."""

    address: str = Field(
        pattern=HTTP_ADDRESS,
        description="The base URL the query API lives under, e.g. "
        "http://prometheus.istio-system:9090 or https://mimir.example.com/prometheus.",
    )
    bearer_token: SecretKeyRef | None = Field(
        default=None, description="A Secret key holding a token sent as Authorization: Bearer."
    )
    headers: list[SecretHeader] = Field(
        default_factory=list,
        description="Headers sent with every query, each value from a Secret (e.g. "
        "X-Scope-OrgID for a multi-tenant Mimir or Cortex, or a basic Authorization).",
    )
    tls: TLS = Field(default_factory=TLS, description="How the server's certificate is checked.")

    @field_validator("address", mode="before")
    @classmethod
    def _a_url(cls, value: Any) -> Any:
        return http_address(
            value, "http://prometheus.istio-system:9090, or https://mimir.example.com/prometheus"
        )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [header.name.lower() for header in self.headers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"headers: duplicate header(s) {', '.join(duplicates)}")
        if self.bearer_token is not None and "authorization" in names:
            raise ValueError(
                "bearerToken: an Authorization header is set in headers too; keep one of them"
            )
        if self.tls.ca_bundle is not None:
            if self.address.startswith("http://"):
                raise ValueError(
                    "tls.caBundle: the address is http://, so no certificate is ever checked and "
                    "the CA bundle would never be used; use an https:// address, or drop tls"
                )
            if self.tls.insecure_skip_verify:
                raise ValueError(
                    "tls.caBundle: insecureSkipVerify is true too, so the CA bundle would never "
                    "be used; keep one of them"
                )
        return self


# Every backend a template can name; a new one is a new field of Provider and an adapter.
Backend = PrometheusProvider | JaegerProvider
# The backends whose question is a query text (spec.query); the others say theirs in their
# own sub-model (a trace check's operation, tags and computation).
QUERY_BACKENDS = frozenset({"prometheus"})


class Provider(Model):
    """Where a template's query runs: exactly one backend."""

    prometheus: PrometheusProvider | None = Field(
        default=None, description="A Prometheus-compatible query API."
    )
    jaeger: JaegerProvider | None = Field(
        default=None,
        description="Jaeger's query API: a trace SLO on one operation's spans (its question is "
        "in this sub-model; spec.query stays unset).",
    )

    @model_validator(mode="before")
    @classmethod
    def _named_backends(cls, data: Any) -> Any:
        """One line for a provider that names no backend canary knows, instead of an "unknown
        field" per key: the `type: prometheus` form of older versions, or another system."""
        if not isinstance(data, dict):
            return data
        known = list(cls.model_fields)
        unknown = [str(key) for key in data if key not in known]
        if not unknown:
            return data
        names = ", ".join(known)
        if "type" in data or "address" in data:
            kind = data.get("type")
            if isinstance(kind, str) and kind not in known:
                raise ValueError(
                    f"the `type: {kind}` form is gone, and {kind} is not a backend canary knows "
                    f"(known: {names})"
                )
            backend = kind if isinstance(kind, str) else known[0]
            rest = sorted(set(unknown) - {"type", "address"})
            moved = (
                f"; {', '.join(rest)} move under it too (tls.insecureSkipVerify, credentials as "
                "bearerToken or headers from a Secret)"
                if rest
                else ""
            )
            raise ValueError(
                f"use provider.{backend}.address (the `type: {backend}` form is gone): write "
                f"provider: {{{backend}: {{address: ...}}}}{moved}"
            )
        if len(unknown) < len(data):
            chosen = " and ".join(str(key) for key in data)
            raise ValueError(
                f"set exactly one backend, not {chosen} "
                f"({', '.join(unknown)} unknown; known: {names})"
            )
        what = "unknown backend" if len(unknown) == 1 else "unknown backends"
        raise ValueError(f"{what} {', '.join(unknown)} (known: {names})")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        known = ", ".join(type(self).model_fields)
        if not chosen:
            example = next(iter(type(self).model_fields))
            raise ValueError(
                f"set one backend (known: {known}), e.g. provider: {{{example}: {{address: ...}}}}"
            )
        if len(chosen) > 1:
            raise ValueError(f"set exactly one backend, not {' and '.join(chosen)}")
        return self

    @property
    def kind(self) -> str:
        """The backend's name as written, e.g. prometheus."""
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @property
    def backend(self) -> Backend:
        found = getattr(self, self.kind)
        assert isinstance(found, PrometheusProvider | JaegerProvider)
        return found


class MetricTemplateSpec(Model):
    provider: Provider = Field(description="Where the query runs.")
    query: str | None = Field(
        default=None,
        min_length=1,
        description="The query (for provider prometheus), with {{ namespace }}, {{ service }}, "
        "{{ subset }}, {{ version }}, {{ interval }} and the Canary's templateVariables.",
    )
    requests_query: str | None = Field(
        default=None,
        description="A query for the number of requests in the window, for minRequests.",
    )

    @model_validator(mode="after")
    def _well_formed(self) -> Self:
        kind = self.provider.kind
        if kind in QUERY_BACKENDS and self.query is None:
            raise ValueError(f"query: provider {kind} needs a query")
        if kind not in QUERY_BACKENDS and (self.query or self.requests_query):
            field = "query" if self.query else "requestsQuery"
            raise ValueError(
                f"{field}: provider {kind} takes no query text; its question is in "
                f"provider.{kind} (and minSpans stands in for requestsQuery)"
            )
        for text in (self.query or "", self.requests_query or ""):
            if text.count("{{") != text.count("}}"):
                raise ValueError("unbalanced {{ }} in the query")
        for field, given in (("query", self.query), ("requestsQuery", self.requests_query)):
            refused = templating.problems(given or "")
            if refused:
                # Unrendered, it would reach the backend as text that matches nothing.
                raise ValueError(f"{field}: {'; '.join(refused)}")
        return self

    def backend_templated(self) -> tuple[str, ...]:
        """The texts a backend's sub-model itself holds for rendering (a trace check's fields)."""
        backend = self.provider.backend
        return backend.templated() if isinstance(backend, JaegerProvider) else ()

    def templated(self) -> tuple[str, ...]:
        """Every text a rendering fills in: the query texts, and the backend's own."""
        queries = tuple(text for text in (self.query, self.requests_query) if text)
        return queries + self.backend_templated()

    def comparison_problem(self) -> str:
        """Why a check could not compare canary with stable on this template ("" if it can).

        A comparison reads the query as the count of bad events and requestsQuery as the count
        of requests, each rendered once for the canary and once for stable: both must name the
        side they count.
        """
        kind = self.provider.kind
        if kind not in QUERY_BACKENDS:
            return f"provider.{kind}: a comparison counts requests; use a query backend"
        if self.requests_query is None:
            return "requestsQuery: a comparison needs each side's number of requests"
        for field, text in (("query", self.query or ""), ("requestsQuery", self.requests_query)):
            if not templating.variables(text) & SIDE_VARIABLES:
                return (
                    f"{field}: uses neither {{{{ subset }}}} nor {{{{ version }}}}, so it cannot "
                    "be asked for the stable side"
                )
        for field, text in (("query", self.query or ""), ("requestsQuery", self.requests_query)):
            if _WINDOWED.search(text) or "interval" in templating.variables(text):
                # The comparison reads a count as its value at the tick less its value at the
                # window's start (api/counts.py): a windowed rate or increase has no meaning there.
                return (
                    f"{field}: a comparison counts over its own exact window, so it needs a "
                    'cumulative count (e.g. sum(errors_total{version="{{ version }}"})); drop '
                    "rate()/increase() and {{ interval }}"
                )
        return ""

    def custom_variables(self) -> frozenset[str]:
        used: frozenset[str] = frozenset()
        for text in self.templated():
            used |= templating.variables(text)
        return used - STANDARD_VARIABLES


class MetricTemplate(Model):
    """A named, reusable query that a Canary's metric check refers to by templateRef."""

    api_version: Literal["canary.dev/v1alpha1"] = Field(
        default=API_VERSION, description="canary.dev/v1alpha1"
    )
    kind: Literal["MetricTemplate"] = Field(default="MetricTemplate", description="MetricTemplate")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: MetricTemplateSpec = Field(description="The query and where it runs.")
