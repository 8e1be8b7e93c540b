"""PrometheusProviders without a network: what a template's provider turns into (headers, TLS
verification, the CA bundle's file), when a client is reused, and how a bad Secret is reported.
The same against a real Prometheus is tests/e2e/adapters/test_prometheus_auth.py."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import certifi
import pytest

from canary.adapters.prometheus import PrometheusMetrics, PrometheusProviders
from canary.api.metric_template import PrometheusProvider
from canary.errors import InvalidSpec
from canary.fakes import FakeSecrets

ADDRESS = "https://mimir.example.com/prometheus"
# Any PEM bundle OpenSSL accepts will do: the one requests itself trusts.
PEM = Path(certifi.where()).read_text()


def _backend(**fields: Any) -> PrometheusProvider:
    return PrometheusProvider.model_validate({"address": ADDRESS, **fields})


def _header(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "mimir", "key": key}}}


@pytest.fixture
def secrets() -> FakeSecrets:
    return FakeSecrets(
        {
            ("shop", "mimir", "token"): "tok-1\n",
            ("shop", "mimir", "tenant"): "  team-a ",
            ("shop", "mimir", "ca.crt"): PEM,
            ("shop", "mimir", "empty"): "\n",
            ("shop", "mimir", "two-lines"): "a\nb",
            ("shop", "mimir", "not-pem"): "hello",
            ("shop", "mimir", "bad-pem"): "-----BEGIN CERTIFICATE-----\nAAAA\n"
            "-----END CERTIFICATE-----\n",
        }
    )


def test_secrets_become_trimmed_headers_and_tls_is_verified(secrets: FakeSecrets) -> None:
    backend = _backend(
        bearerToken={"name": "mimir", "key": "token"},
        headers=[_header("X-Scope-OrgID", "tenant")],
    )
    client = PrometheusProviders(secrets)(backend, "shop")
    assert client.url == ADDRESS
    assert client.headers() == {"X-Scope-OrgID": "team-a", "Authorization": "Bearer tok-1"}
    assert client.verify is True


def test_insecure_skip_verify_turns_verification_off(secrets: FakeSecrets) -> None:
    client = PrometheusProviders(secrets)(_backend(tls={"insecureSkipVerify": True}), "shop")
    assert client.verify is False


def test_a_ca_bundle_is_a_file_that_lives_as_long_as_its_client(secrets: FakeSecrets) -> None:
    providers = PrometheusProviders(secrets, max_clients=1)
    client = providers(_backend(tls={"caBundle": {"name": "mimir", "key": "ca.crt"}}), "shop")
    assert isinstance(client.verify, str)
    path = client.verify
    assert Path(path).read_text() == PEM
    # Another configuration pushes it out of the cache; once nobody holds it, its file goes.
    providers(_backend(), "shop")
    del client
    gc.collect()
    assert not os.path.exists(path)


def test_the_same_configuration_reuses_one_client(secrets: FakeSecrets) -> None:
    providers = PrometheusProviders(secrets)
    backend = _backend(bearerToken={"name": "mimir", "key": "token"})
    first = providers(backend, "shop")
    assert providers(_backend(bearerToken={"name": "mimir", "key": "token"}), "shop") is first
    # A rotated token is another configuration: a new client, then reused in its turn.
    secrets.values[("shop", "mimir", "token")] = "tok-2"
    second = providers(backend, "shop")
    assert second is not first
    assert second.headers()["Authorization"] == "Bearer tok-2"
    assert providers(backend, "shop") is second
    # So is a rotated CA bundle.
    with_ca = _backend(tls={"caBundle": {"name": "mimir", "key": "ca.crt"}})
    ca_client = providers(with_ca, "shop")
    secrets.values[("shop", "mimir", "ca.crt")] = PEM + "\n"
    assert providers(with_ca, "shop") is not ca_client


def test_clients_beyond_the_limit_are_dropped_least_recently_used_first(
    secrets: FakeSecrets,
) -> None:
    providers = PrometheusProviders(secrets, max_clients=2)
    a = providers(_backend(address="https://a.example.com"), "shop")
    b = providers(_backend(address="https://b.example.com"), "shop")
    assert providers(_backend(address="https://a.example.com"), "shop") is a
    providers(_backend(address="https://c.example.com"), "shop")
    assert providers(_backend(address="https://a.example.com"), "shop") is a
    assert providers(_backend(address="https://b.example.com"), "shop") is not b


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"bearerToken": {"name": "gone", "key": "token"}},
            "provider.prometheus.bearerToken: Secret shop/gone has no key 'token'",
            id="missing-secret",
        ),
        pytest.param(
            {"headers": [_header("X-Scope-OrgID", "nope")]},
            "provider.prometheus.headers[0] (X-Scope-OrgID): Secret shop/mimir has no key 'nope'",
            id="missing-key",
        ),
        pytest.param(
            {"bearerToken": {"name": "mimir", "key": "empty"}},
            "provider.prometheus.bearerToken: Secret shop/mimir key 'empty' is empty; a header "
            "value is one line of text",
            id="empty-value",
        ),
        pytest.param(
            {"headers": [_header("X-Scope-OrgID", "two-lines")]},
            "provider.prometheus.headers[0] (X-Scope-OrgID): Secret shop/mimir key 'two-lines' "
            "holds a line break; a header value is one line of text",
            id="two-lines",
        ),
        pytest.param(
            {"tls": {"caBundle": {"name": "mimir", "key": "not-pem"}}},
            "provider.prometheus.tls.caBundle: Secret shop/mimir key 'not-pem' is not a PEM CA "
            "certificate (no -----BEGIN CERTIFICATE----- line)",
            id="not-pem",
        ),
    ],
)
def test_a_bad_secret_is_invalid_spec_naming_the_field_and_the_secret(
    secrets: FakeSecrets, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        PrometheusProviders(secrets)(_backend(**fields), "shop")
    assert str(caught.value) == message


def test_a_pem_that_openssl_refuses_is_invalid_spec(secrets: FakeSecrets) -> None:
    with pytest.raises(InvalidSpec, match=r"key 'bad-pem' is not a PEM CA certificate \("):
        PrometheusProviders(secrets)(
            _backend(tls={"caBundle": {"name": "mimir", "key": "bad-pem"}}), "shop"
        )


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    client = PrometheusMetrics(ADDRESS, bearer_token_file=str(token))
    assert client.headers() == {"Authorization": "Bearer first"}
    # As the kubelet does: a new file renamed over the old one.
    (tmp_path / "token.new").write_text("second")
    os.replace(tmp_path / "token.new", token)
    assert client.headers() == {"Authorization": "Bearer second"}


def test_a_token_file_gone_later_is_an_error_measurement_not_an_exception(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    client = PrometheusMetrics(ADDRESS, bearer_token_file=str(token))
    token.unlink()
    measured = client.measure("up")
    assert measured.kind.value == "error"
    assert measured.message.startswith(f"bearer token for {ADDRESS}: ")
    assert "No such file" in measured.message


def test_an_empty_token_file_is_refused_at_once(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        PrometheusMetrics(ADDRESS, bearer_token_file=str(token))
