"""A MetricTemplate's `provider`: exactly one backend sub-model, and a Prometheus one that holds
together (credentials from Secrets, TLS verified unless said otherwise). Each bad provider is one
line naming the field to edit, as `canary validate` and the controller's InvalidSpec show it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from canary.api import problems, resources
from canary.api.metric_template import MetricTemplate, PrometheusProvider, Provider
from canary.api.secrets import SecretKeyRef

ADDRESS = "https://mimir.example.com/prometheus"


def _template(provider: Any) -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": "errors", "namespace": "shop"},
        "spec": {"provider": provider, "query": "sum(rate(errors[{{ interval }}]))"},
    }


def _lines(provider: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        resources.parse(_template(provider))
    return problems.lines(caught.value, MetricTemplate)


def _header(name: str, secret: str = "mimir", key: str = "value") -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def test_a_full_prometheus_provider_parses_with_tls_verified_by_default() -> None:
    template = resources.parse(
        _template(
            {
                "prometheus": {
                    "address": ADDRESS,
                    "bearerToken": {"name": "mimir", "key": "token"},
                    "headers": [_header("X-Scope-OrgID", key="tenant")],
                    "tls": {"caBundle": {"name": "mimir-ca", "key": "ca.crt"}},
                }
            }
        )
    )
    assert isinstance(template, MetricTemplate)
    provider = template.spec.provider
    assert provider.kind == "prometheus"
    backend = provider.backend
    assert isinstance(backend, PrometheusProvider)
    assert backend.bearer_token == SecretKeyRef(name="mimir", key="token")
    assert backend.headers[0].value_from.secret_key_ref.key == "tenant"
    assert backend.tls.ca_bundle == SecretKeyRef(name="mimir-ca", key="ca.crt")
    assert backend.tls.insecure_skip_verify is False
    assert PrometheusProvider(address="http://p:9090").tls.insecure_skip_verify is False


def test_the_wire_form_round_trips() -> None:
    wire = {
        "prometheus": {
            "address": ADDRESS,
            "headers": [_header("Authorization")],
            "tls": {"insecureSkipVerify": True},
        }
    }
    assert Provider.model_validate(wire).to_wire() == wire


@pytest.mark.parametrize(
    ("provider", "line"),
    [
        pytest.param(
            {},
            "spec.provider: set one backend (known: prometheus, jaeger), "
            "e.g. provider: {prometheus: {address: ...}}",
            id="empty",
        ),
        pytest.param(
            {"prometheus": None},
            "spec.provider: set one backend (known: prometheus, jaeger), "
            "e.g. provider: {prometheus: {address: ...}}",
            id="null-backend",
        ),
        pytest.param(
            {"datadog": {"apiKey": "x"}},
            "spec.provider: unknown backend datadog (known: prometheus, jaeger)",
            id="unknown-backend",
        ),
        pytest.param(
            {"datadog": {}, "newrelic": {}},
            "spec.provider: unknown backends datadog, newrelic (known: prometheus, jaeger)",
            id="unknown-backends",
        ),
        pytest.param(
            {"prometheus": {"address": ADDRESS}, "datadog": {}},
            "spec.provider: set exactly one backend, not prometheus and datadog "
            "(datadog unknown; known: prometheus, jaeger)",
            id="two-backends",
        ),
        pytest.param(
            {"type": "prometheus", "address": "http://prometheus:9090"},
            "spec.provider: use provider.prometheus.address (the `type: prometheus` form is "
            "gone): write provider: {prometheus: {address: ...}}",
            id="old-form",
        ),
        pytest.param(
            {"address": "http://prometheus:9090"},
            "spec.provider: use provider.prometheus.address (the `type: prometheus` form is "
            "gone): write provider: {prometheus: {address: ...}}",
            id="old-form-without-type",
        ),
        pytest.param(
            {
                "type": "prometheus",
                "address": "http://prometheus:9090",
                "secretRef": {"name": "prom"},
                "insecureSkipVerify": True,
            },
            "spec.provider: use provider.prometheus.address (the `type: prometheus` form is "
            "gone): write provider: {prometheus: {address: ...}}; insecureSkipVerify, secretRef "
            "move under it too (tls.insecureSkipVerify, credentials as bearerToken or headers "
            "from a Secret)",
            id="flagger-form",
        ),
        pytest.param(
            {"type": "datadog", "address": "x"},
            "spec.provider: the `type: datadog` form is gone, and datadog is not a backend "
            "canary knows (known: prometheus, jaeger)",
            id="old-form-unknown-type",
        ),
        pytest.param(
            None,
            "spec.provider: expected a mapping (got null)",
            id="null",
        ),
        pytest.param(
            {"prometheus": {"address": "prometheus:9090"}},
            "spec.provider.prometheus.address: 'prometheus:9090' is not an http:// or https:// "
            "URL (e.g. http://prometheus.istio-system:9090, or "
            "https://mimir.example.com/prometheus)",
            id="address-not-a-url",
        ),
        pytest.param(
            {
                "prometheus": {
                    "address": "http://mimir:8080/prometheus",
                    "tls": {"caBundle": {"name": "mimir-ca", "key": "ca.crt"}},
                }
            },
            "spec.provider.prometheus.tls.caBundle: the address is http://, so no certificate "
            "is ever checked and the CA bundle would never be used; use an https:// address, or "
            "drop tls",
            id="ca-bundle-over-http",
        ),
        pytest.param(
            {
                "prometheus": {
                    "address": ADDRESS,
                    "tls": {
                        "caBundle": {"name": "mimir-ca", "key": "ca.crt"},
                        "insecureSkipVerify": True,
                    },
                }
            },
            "spec.provider.prometheus.tls.caBundle: insecureSkipVerify is true too, so the CA "
            "bundle would never be used; keep one of them",
            id="ca-bundle-and-skip-verify",
        ),
        pytest.param(
            {
                "prometheus": {
                    "address": ADDRESS,
                    "bearerToken": {"name": "mimir", "key": "token"},
                    "headers": [_header("authorization")],
                }
            },
            "spec.provider.prometheus.bearerToken: an Authorization header is set in headers "
            "too; keep one of them",
            id="bearer-and-authorization",
        ),
        pytest.param(
            {"prometheus": {"address": ADDRESS, "headers": [_header("X-A"), _header("x-a")]}},
            "spec.provider.prometheus.headers: duplicate header(s) x-a",
            id="duplicate-headers",
        ),
        pytest.param(
            {"prometheus": {"address": ADDRESS, "headers": [_header("X Scope")]}},
            "spec.provider.prometheus.headers[0].name: string should match pattern "
            "'^[!#$%&'*+.^_`|~0-9A-Za-z-]+$' (got 'X Scope')",
            id="header-name",
        ),
        pytest.param(
            {"prometheus": {"address": ADDRESS, "tls": {"caBundle": {"name": "ca"}}}},
            "spec.provider.prometheus.tls.caBundle.key: required",
            id="ca-bundle-without-key",
        ),
        pytest.param(
            {"prometheus": {"address": ADDRESS, "tls": {"insecure": True}}},
            "spec.provider.prometheus.tls.insecure: unknown field (did you mean "
            "insecureSkipVerify? known: caBundle, insecureSkipVerify)",
            id="tls-typo",
        ),
    ],
)
def test_a_bad_provider_is_one_line_naming_the_field(provider: Any, line: str) -> None:
    assert _lines(provider) == [line]


def test_insecure_skip_verify_over_http_is_harmless_and_allowed() -> None:
    """Nothing to verify over http://, and nothing the user expects is skipped silently."""
    backend = PrometheusProvider.model_validate(
        {"address": "http://prometheus:9090", "tls": {"insecureSkipVerify": True}}
    )
    assert backend.tls.insecure_skip_verify is True


def test_the_before_validator_leaves_model_instances_and_python_names_alone() -> None:
    backend = PrometheusProvider(address=ADDRESS)
    assert Provider(prometheus=backend).backend is backend
    assert Provider.model_validate(Provider(prometheus=backend)).kind == "prometheus"
