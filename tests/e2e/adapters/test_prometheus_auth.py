"""A template's Prometheus behind TLS and credentials, as a managed one is: against a real one.

Prometheus serves HTTPS with a certificate for 127.0.0.1 signed by a throwaway CA made here with
openssl, and asks for basic auth (its `--web.config.file`). The adapter reads the CA bundle and
the credentials from Secrets in a LocalStore, as it would from the API server: a verified query
gives a value; without the CA, or with a wrong password, the measurement is an error that says
what to fix, never a value. Prometheus cannot check bearer tokens, so a small recording server
shows that the token (and a tenant header) arrive as sent.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from canary.adapters.prometheus import PrometheusProviders
from canary.api.metric_template import PrometheusProvider
from canary.api.status import MeasurementKind
from canary.cluster.run import RunOptions, builtin_prometheus
from canary.errors import InvalidSpec
from canary.localmesh import procs
from canary.localmesh.prometheus import prometheus_binary, scrape_config
from canary.localmesh.store import LocalStore

NAMESPACE = "shop"
USER = "canary"
PASSWORD = "s3cret-pass"
START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Certs:
    ca: Path
    cert: Path
    key: Path
    # A CA that signed nothing here: trusting it alone must not verify the server.
    other_ca: Path


@dataclass(frozen=True, slots=True)
class SecuredPrometheus:
    url: str
    certs: Certs


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA and a server certificate for IP 127.0.0.1 that it signed (P-256, valid a day)."""
    where = tmp_path_factory.mktemp("pki")
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=canary test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=where,
    )  # fmt: skip
    _openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=where)  # fmt: skip
    (where / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "server.ext",
        cwd=where,
    )  # fmt: skip
    _openssl("req", "-x509", *curve, "-keyout", "other.key", "-out", "other.crt", "-days", "1",
             "-subj", "/CN=another CA", cwd=where)  # fmt: skip
    return Certs(
        ca=where / "ca.crt",
        cert=where / "server.crt",
        key=where / "server.key",
        other_ca=where / "other.crt",
    )


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _wait_ready(url: str, certs: Certs, process: procs.Process) -> None:
    """Polls `/-/ready` over verified TLS with the credentials, for at most START_TIMEOUT."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    request = urllib.request.Request(
        f"{url}/-/ready", headers={"Authorization": _basic(USER, PASSWORD)}
    )
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if not process.alive():
            raise process.failure("exited before it was ready")
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as answer:
                if answer.status == 200:
                    return
                last = f"status {answer.status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise process.failure(f"not ready at {url} within {START_TIMEOUT:g}s (last: {last})")


@pytest.fixture(scope="module")
def prometheus(
    certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredPrometheus]:
    """Prometheus on HTTPS with basic auth, on a free loopback port, in its own process group.

    localmesh's start_prometheus waits for readiness over plain HTTP, so the start is spelt out
    here with its binary, its config writer and its supervisor.
    """
    workdir = tmp_path_factory.mktemp("prometheus-tls")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = {
        "tls_server_config": {"cert_file": str(certs.cert), "key_file": str(certs.key)},
        "basic_auth_users": {USER: hashed},
    }
    # JSON is YAML.
    (workdir / "web.yml").write_text(json.dumps(web))
    (workdir / "prometheus.yml").write_text(json.dumps(scrape_config({})))
    port = procs.free_port()
    argv = [
        str(prometheus_binary()),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--web.config.file={workdir / 'web.yml'}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with procs.Supervisor(workdir / "logs") as supervisor:
        process = supervisor.start("prometheus", argv, cwd=workdir)
        url = f"https://127.0.0.1:{port}"
        _wait_ready(url, certs, process)
        yield SecuredPrometheus(url=url, certs=certs)
    assert not process.group_alive(), f"prometheus (pid {process.pid}) outlived its test"


@pytest.fixture
def store(tmp_path: Path, certs: Certs) -> LocalStore:
    """Secrets as the API server keeps them (base64 `data`), plus one with a wrong password."""
    local = LocalStore(tmp_path / "state")
    _put_secret(local, "prometheus-ca", {"ca.crt": certs.ca.read_text()})
    _put_secret(local, "other-ca", {"ca.crt": certs.other_ca.read_text(), "junk": "not a PEM"})
    # A value written with `echo ... | kubectl create secret` ends with a newline.
    _put_secret(local, "prometheus-auth", {"authorization": _basic(USER, PASSWORD) + "\n"})
    _put_secret(local, "prometheus-wrong", {"authorization": _basic(USER, "not-the-password")})
    return local


def _put_secret(store: LocalStore, name: str, values: dict[str, str]) -> None:
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    store.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": data,
        }
    )


def _backend(address: str, **fields: Any) -> PrometheusProvider:
    """provider.prometheus as a template writes it; by default the CA and basic auth."""
    body: dict[str, Any] = {
        "address": address,
        "headers": [
            {
                "name": "Authorization",
                "valueFrom": {"secretKeyRef": {"name": "prometheus-auth", "key": "authorization"}},
            }
        ],
        "tls": {"caBundle": {"name": "prometheus-ca", "key": "ca.crt"}},
        **fields,
    }
    return PrometheusProvider.model_validate(body)


def test_tls_with_the_ca_bundle_from_a_secret_gives_a_value(
    prometheus: SecuredPrometheus, store: LocalStore
) -> None:
    provider = PrometheusProviders(store)(_backend(prometheus.url), NAMESPACE)
    measured = provider.measure("vector(42)", requests_query="vector(7)")
    assert measured.kind is MeasurementKind.VALUE, measured.message
    assert measured.value == 42
    assert measured.samples == 7


def test_tls_is_verified_by_default(prometheus: SecuredPrometheus, store: LocalStore) -> None:
    """Without the CA, the system's trust store does not know the server's issuer: an error
    that tells the user which field to set, never a value."""
    backend = _backend(prometheus.url, tls={})
    measured = PrometheusProviders(store)(backend, NAMESPACE).measure("vector(42)")
    assert measured.kind is MeasurementKind.ERROR
    assert measured.value is None
    assert "TLS: certificate verify failed" in measured.message
    assert "provider.prometheus.tls.caBundle" in measured.message
    assert prometheus.url in measured.message


def test_a_ca_bundle_that_did_not_sign_the_server_is_an_error(
    prometheus: SecuredPrometheus, store: LocalStore
) -> None:
    backend = _backend(prometheus.url, tls={"caBundle": {"name": "other-ca", "key": "ca.crt"}})
    measured = PrometheusProviders(store)(backend, NAMESPACE).measure("vector(42)")
    assert measured.kind is MeasurementKind.ERROR
    assert "TLS: certificate verify failed" in measured.message
    assert "the CA in provider.prometheus.tls.caBundle did not sign" in measured.message


def test_a_ca_bundle_that_is_no_pem_is_invalid_spec(
    prometheus: SecuredPrometheus, store: LocalStore
) -> None:
    backend = _backend(prometheus.url, tls={"caBundle": {"name": "other-ca", "key": "junk"}})
    with pytest.raises(InvalidSpec) as caught:
        PrometheusProviders(store)(backend, NAMESPACE)
    assert str(caught.value).startswith(
        "provider.prometheus.tls.caBundle: Secret shop/other-ca key 'junk' is not a PEM CA "
        "certificate"
    )


def test_http_to_the_https_port_says_what_the_server_said(
    prometheus: SecuredPrometheus, store: LocalStore
) -> None:
    plain = prometheus.url.replace("https://", "http://")
    measured = PrometheusProviders(store)(_backend(plain, tls={}), NAMESPACE).measure("up")
    assert measured.kind is MeasurementKind.ERROR
    assert "answered 400 Bad Request" in measured.message
    assert "HTTP request to an HTTPS server" in measured.message


def test_insecure_skip_verify_gives_a_value(
    prometheus: SecuredPrometheus, store: LocalStore
) -> None:
    backend = _backend(prometheus.url, tls={"insecureSkipVerify": True})
    measured = PrometheusProviders(store)(backend, NAMESPACE).measure("vector(42)")
    assert measured.kind is MeasurementKind.VALUE, measured.message
    assert measured.value == 42


def test_a_wrong_password_is_a_401_error(prometheus: SecuredPrometheus, store: LocalStore) -> None:
    wrong = {"name": "prometheus-wrong", "key": "authorization"}
    backend = _backend(
        prometheus.url,
        headers=[{"name": "Authorization", "valueFrom": {"secretKeyRef": wrong}}],
    )
    measured = PrometheusProviders(store)(backend, NAMESPACE).measure("vector(42)")
    assert measured.kind is MeasurementKind.ERROR
    assert measured.value is None
    assert "401 Unauthorized" in measured.message
    assert "provider.prometheus.bearerToken or headers" in measured.message


def test_no_credentials_is_a_401_error_too(
    prometheus: SecuredPrometheus, store: LocalStore
) -> None:
    measured = PrometheusProviders(store)(_backend(prometheus.url, headers=[]), NAMESPACE).measure(
        "vector(42)"
    )
    assert measured.kind is MeasurementKind.ERROR
    assert "401 Unauthorized" in measured.message


def test_a_missing_secret_or_key_is_invalid_spec_naming_it(
    prometheus: SecuredPrometheus, store: LocalStore
) -> None:
    providers = PrometheusProviders(store)
    missing = _backend(prometheus.url, tls={"caBundle": {"name": "no-such-ca", "key": "ca.crt"}})
    with pytest.raises(InvalidSpec) as caught:
        providers(missing, NAMESPACE)
    assert "Secret shop/no-such-ca not found" in str(caught.value)
    assert "provider.prometheus.tls.caBundle" in str(caught.value)

    no_key = _backend(
        prometheus.url, bearerToken={"name": "prometheus-ca", "key": "token"}, headers=[]
    )
    with pytest.raises(InvalidSpec) as caught:
        providers(no_key, NAMESPACE)
    assert "Secret shop/prometheus-ca has no key 'token'" in str(caught.value)
    assert "provider.prometheus.bearerToken" in str(caught.value)


def test_the_same_config_reuses_its_client_and_a_rotated_secret_makes_a_new_one(
    prometheus: SecuredPrometheus, store: LocalStore
) -> None:
    providers = PrometheusProviders(store)
    first = providers(_backend(prometheus.url), NAMESPACE)
    assert providers(_backend(prometheus.url), NAMESPACE) is first
    assert first.measure("vector(1)").kind is MeasurementKind.VALUE

    _put_secret(store, "prometheus-auth", {"authorization": _basic(USER, "rotated")})
    rotated = providers(_backend(prometheus.url), NAMESPACE)
    assert rotated is not first
    # Prometheus was not told of the new password: the new client's header is the one sent.
    assert "401" in rotated.measure("vector(1)").message
    assert providers(_backend(prometheus.url), NAMESPACE) is rotated


def test_canary_runs_own_prometheus_names_its_flags(prometheus: SecuredPrometheus) -> None:
    """`canary run --prometheus-ca-file`: TLS verifies (then basic auth, which a bearer token
    cannot satisfy, refuses); without the flag the certificate does not verify. Each error names
    the flag to change, not a template's field."""
    with_ca = builtin_prometheus(
        RunOptions(prometheus_url=prometheus.url, prometheus_ca_file=str(prometheus.certs.ca))
    ).measure("vector(1)")
    assert with_ca.kind is MeasurementKind.ERROR
    assert "401 Unauthorized" in with_ca.message
    assert "check --prometheus-bearer-token-file" in with_ca.message

    without = builtin_prometheus(RunOptions(prometheus_url=prometheus.url)).measure("vector(1)")
    assert "TLS: certificate verify failed" in without.message
    assert "set --prometheus-ca-file to that CA's PEM certificate" in without.message


# The bearer token: a recording server in place of a Prometheus that could check it.


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        type(self).seen.append({":path": self.path, **dict(self.headers.items())})
        if self.path.startswith("/behind-login/"):
            self.send_response(302)
            self.send_header("Location", "https://login.example.com/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "3"]}]},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", procs.free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, name="recorder", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_bearer_token_and_headers_arrive_as_sent(
    recorder: tuple[str, list[dict[str, str]]], store: LocalStore
) -> None:
    url, seen = recorder
    _put_secret(store, "mimir", {"token": "tok-123\n", "tenant": "team-a"})
    backend = PrometheusProvider.model_validate(
        {
            "address": f"{url}/prometheus",
            "bearerToken": {"name": "mimir", "key": "token"},
            "headers": [
                {
                    "name": "X-Scope-OrgID",
                    "valueFrom": {"secretKeyRef": {"name": "mimir", "key": "tenant"}},
                }
            ],
        }
    )
    measured = PrometheusProviders(store)(backend, NAMESPACE).measure("up")
    assert measured.kind is MeasurementKind.VALUE, measured.message
    assert measured.value == 3
    assert len(seen) == 1
    assert seen[0][":path"].startswith("/prometheus/api/v1/query?query=up")
    assert seen[0]["Authorization"] == "Bearer tok-123"
    assert seen[0]["X-Scope-OrgID"] == "team-a"


def test_a_redirect_is_not_followed_and_says_where_it_went(
    recorder: tuple[str, list[dict[str, str]]], store: LocalStore
) -> None:
    url, seen = recorder
    backend = PrometheusProvider.model_validate({"address": f"{url}/behind-login"})
    measured = PrometheusProviders(store)(backend, NAMESPACE).measure("up")
    assert measured.kind is MeasurementKind.ERROR
    assert "answered 302 Found, a redirect to https://login.example.com/" in measured.message
    assert len(seen) == 1


def test_https_to_a_plain_http_server_hints_at_the_scheme(
    recorder: tuple[str, list[dict[str, str]]], store: LocalStore
) -> None:
    url, _ = recorder
    backend = PrometheusProvider.model_validate({"address": url.replace("http://", "https://")})
    measured = PrometheusProviders(store)(backend, NAMESPACE).measure("up")
    assert measured.kind is MeasurementKind.ERROR
    assert "TLS handshake with https://127.0.0.1:" in measured.message
    assert "use an http:// address" in measured.message
