"""Prometheus as a MetricsProvider: one instant query in, one Measurement out.

Every way a query can go wrong becomes a kind of Measurement, never an exception and never 0:
an empty result is `no_data` (and says so, because "no values found" with no hint is the commonest
support thread canary tools have, flagger#1365), NaN is `nan`, a PromQL error or an unreachable
server is `error` with Prometheus' own words. More than one series is an error too: picking one
of them, as Flagger does, would judge an arbitrary pod.

A managed Prometheus (Thanos, Cortex, Mimir, a cloud's) sits behind TLS and credentials. TLS is
verified unless the user says otherwise; a certificate that does not verify, a 401 or a 403 is
an error that names the setting to fix (`Hints`: a template's fields, or `canary run`'s flags).
Redirects are not followed: a login page in front of the query API would otherwise come back as
"not a Prometheus answer", and the credentials stay with the address they were configured for.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import math
import os
import shutil
import ssl
import tempfile
import threading
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InsecureRequestWarning
from urllib3.util.retry import Retry

from canary.api.metric_template import PrometheusProvider
from canary.api.secrets import SecretKeyRef
from canary.api.status import MeasurementKind
from canary.engine.observation import Measurement
from canary.errors import InvalidSpec
from canary.ports import Secrets

log = structlog.get_logger("canary.prometheus")

# OpenSSL's verify codes that mean "the issuer is not trusted here": a private CA.
_UNKNOWN_ISSUER = frozenset({2, 18, 19, 20, 21})
# The certificate is for another host or IP address.
_NAME_MISMATCH = frozenset({62, 64})
_BODY_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Hints:
    """Where the user fixes a TLS or credentials failure, in the words of their configuration."""

    ca: str = "provider.prometheus.tls.caBundle"
    credentials: str = "provider.prometheus.bearerToken or headers (and the Secrets they name)"


TEMPLATE_HINTS = Hints()


class PrometheusMetrics:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        bearer_token_file: str | None = None,
        hints: Hints = TEMPLATE_HINTS,
    ) -> None:
        """`verify`: True (the system's trust store), False (no verification), or the path of
        a PEM bundle of the CAs to trust. `bearer_token_file`: a file whose content is sent as
        `Authorization: Bearer`, read now (OSError or ValueError when missing or empty) and
        again whenever the file changes, as a projected ServiceAccount token does."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.verify = verify
        self.hints = hints
        self._headers = dict(headers or {})
        self._token = None if bearer_token_file is None else _TokenFile(bearer_token_file)
        if self._token is not None:
            self._token.header()
        self._session = requests.Session()
        # No retries inside a query: the next check is the retry, and a slow failure would hold
        # up every other Canary's tick.
        adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def headers(self) -> dict[str, str]:
        """The headers a query sends now (a token file is read again if it changed)."""
        if self._token is None:
            return dict(self._headers)
        return {**self._headers, **self._token.header()}

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        main = self._instant(query)
        if main.kind is not MeasurementKind.VALUE or requests_query is None:
            return main
        count = self._instant(requests_query)
        samples = (
            round(count.value)
            if count.kind is MeasurementKind.VALUE and count.value is not None
            else None
        )
        return Measurement(main.kind, value=main.value, query=query, samples=samples)

    def _instant(self, query: str) -> Measurement:
        try:
            headers = self.headers()
        except (OSError, ValueError) as exc:
            return Measurement.error(f"bearer token for {self.url}: {exc}", query=query)
        try:
            response = self._get(query, headers)
        except requests.exceptions.SSLError as exc:
            return Measurement.error(self._tls_problem(exc), query=query)
        except requests.Timeout:
            return Measurement.error(
                f"Prometheus at {self.url} did not answer within {self.timeout:g}s", query=query
            )
        except requests.RequestException as exc:
            return Measurement.error(
                f"Prometheus at {self.url} unreachable: {_reason(exc)}", query=query
            )
        except OSError as exc:  # requests checks a CA bundle's path on each request
            return Measurement.error(f"Prometheus at {self.url}: {exc}", query=query)
        if response.status_code != 200:
            return Measurement.error(self._http_problem(response), query=query)
        try:
            data = response.json()["data"]
            result_type, result = data["resultType"], data["result"]
        except (ValueError, KeyError, TypeError):
            return Measurement.error(
                f"not a Prometheus answer from {self.url}: {_snippet(response.text)!r}",
                query=query,
            )
        return _measurement(result_type, result, query)

    def _get(self, query: str, headers: Mapping[str, str]) -> requests.Response:
        def get() -> requests.Response:
            return self._session.get(
                f"{self.url}/api/v1/query",
                params={"query": query},
                headers=headers,
                timeout=self.timeout,
                # Given per request, so REQUESTS_CA_BUNDLE cannot replace a configured bundle
                # or switch verification back on (requests merges it over the session's).
                verify=self.verify,
                allow_redirects=False,
            )

        if self.verify is not False:
            return get()
        # Unverified TLS was asked for and logged when the client was made; urllib3 would warn
        # on every query. (catch_warnings swaps a module global: a racing thread may keep this
        # filter, which only silences this same warning.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            return get()

    def _tls_problem(self, exc: requests.exceptions.SSLError) -> str:
        failed = next(
            (cause for cause in _causes(exc) if isinstance(cause, ssl.SSLCertVerificationError)),
            None,
        )
        if failed is None:
            hint = " (is it serving plain http? then use an http:// address)"
            wrong = any(
                "WRONG_VERSION_NUMBER" in str(cause) or "record layer" in str(cause)
                for cause in _causes(exc)
            )
            return f"TLS handshake with {self.url} failed: {_reason(exc)}{hint if wrong else ''}"
        why = failed.verify_message or getattr(failed, "reason", None) or str(failed)
        message = f"TLS: certificate verify failed for {self.url} ({why})"
        if failed.verify_code in _UNKNOWN_ISSUER:
            if isinstance(self.verify, str):
                return f"{message}: the CA in {self.hints.ca} did not sign its certificate"
            return (
                f"{message}: its certificate is not signed by a CA this controller trusts; if a "
                f"private CA signs it, set {self.hints.ca} to that CA's PEM certificate"
            )
        if failed.verify_code in _NAME_MISMATCH:
            return f"{message}: use an address whose host its certificate names"
        return message

    def _http_problem(self, response: requests.Response) -> str:
        code, reason = response.status_code, response.reason or ""
        answered = f"Prometheus at {self.url} answered {code} {reason}".rstrip()
        if code == 401:
            return (
                f"{answered}: the credentials are missing or wrong; check {self.hints.credentials}"
            )
        if code == 403:
            return f"{answered}: these credentials may not query it; check {self.hints.credentials}"
        if 300 <= code < 400:
            where = response.headers.get("Location", "?")
            return (
                f"{answered}, a redirect to {where}: not followed (a login page in front of it?); "
                "use the address where the query API answers"
            )
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, str) and error:
            return f"Prometheus refused the query: {error}"
        return f"{answered}: {_snippet(response.text)!r}"


def _measurement(result_type: Any, result: Any, query: str) -> Measurement:
    if result_type == "scalar":
        # A scalar result (`0/0`, `scalar(...)`) comes as [time, "value"], not series.
        return _value(result[1] if isinstance(result, list) and len(result) == 2 else None, query)
    if result_type != "vector" or not isinstance(result, list):
        return Measurement.error(
            f"the query returns a {result_type}, expected one series (an instant vector); "
            "e.g. wrap a range selector in rate(...)",
            query=query,
        )
    if not result:
        return Measurement.no_data(
            query=query, message="the query matched no series (no traffic, or a label typo?)"
        )
    if len(result) > 1:
        labels = [series.get("metric", {}) if isinstance(series, dict) else series
                  for series in result[:3]]  # fmt: skip
        return Measurement.error(
            f"the query returned {len(result)} series, expected one; aggregate it "
            f"(e.g. sum(...)); first: {labels}",
            query=query,
        )
    series = result[0]
    pair = series.get("value") if isinstance(series, dict) else None
    return _value(pair[1] if isinstance(pair, list) and len(pair) == 2 else None, query, series)


def _value(raw: Any, query: str, shown: Any = None) -> Measurement:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return Measurement.error(f"unexpected result shape: {shown or raw!r}", query=query)
    if math.isnan(value):
        return Measurement(MeasurementKind.NAN, query=query, message="NaN")
    return Measurement.of(value, query=query)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: requests and urllib3 keep the cause in args and
    `reason` as often as in __cause__."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [*current.args, getattr(current, "reason", None)]
        inner += [current.__cause__, current.__context__]
        todo.extend(each for each in inner if isinstance(each, BaseException))


def _reason(exc: BaseException) -> str:
    """The innermost system error's words (connection refused, name not known), else the type."""
    for cause in reversed(list(_causes(exc))):
        if isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None):
            return str(cause.reason)
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return type(exc).__name__


def _snippet(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= _BODY_LIMIT else one_line[: _BODY_LIMIT - 3] + "..."


class _TokenFile:
    """A bearer token kept in a file, read again when the file changes (kubelet swaps a
    projected token's file by a symlink, so its inode and mtime change)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._value: dict[str, str] = {}

    def header(self) -> dict[str, str]:
        status = os.stat(self.path)
        stamp = (status.st_ino, status.st_mtime_ns)
        with self._lock:
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as source:
                    token = source.read().strip()
                if not token:
                    raise ValueError(f"the token file {self.path} is empty")
                self._value = {"Authorization": f"Bearer {token}"}
                self._stamp = stamp
            return self._value


class PrometheusProviders:
    """The MetricsProvider for a template's `provider.prometheus`, with its Secrets read.

    One client per distinct configuration (address, header values, TLS), so a template checked
    every few seconds reuses its connection pool; a rotated Secret makes a new configuration,
    hence a new client. The least recently used clients beyond `max_clients` are dropped.
    """

    def __init__(self, secrets: Secrets, *, timeout: float = 5.0, max_clients: int = 64) -> None:
        self.secrets = secrets
        self.timeout = timeout
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._clients: collections.OrderedDict[tuple[object, ...], PrometheusMetrics] = (
            collections.OrderedDict()
        )

    def __call__(self, backend: PrometheusProvider, namespace: str) -> PrometheusMetrics:
        headers: dict[str, str] = {}
        for position, header in enumerate(backend.headers):
            field = f"headers[{position}] ({header.name})"
            headers[header.name] = self._secret(namespace, header.value_from.secret_key_ref, field)
        if backend.bearer_token is not None:
            token = self._secret(namespace, backend.bearer_token, "bearerToken")
            headers["Authorization"] = f"Bearer {token}"
        insecure = backend.tls.insecure_skip_verify
        pem: str | None = None
        bundle = backend.tls.ca_bundle
        if not insecure and bundle is not None:
            pem = self._secret(namespace, bundle, "tls.caBundle", strip=False)
        digest = None if pem is None else hashlib.sha256(pem.encode()).hexdigest()
        key = (backend.address, tuple(sorted(headers.items())), insecure, digest)
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
            if pem is not None and bundle is not None:
                _check_pem(pem, namespace, bundle)
            client = PrometheusMetrics(
                backend.address, timeout=self.timeout, headers=headers, verify=not insecure
            )
            if pem is not None:
                # The bundle's file lives as long as the client that reads it.
                client.verify = _ca_file(pem, client)
            self._clients[key] = client
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        if insecure:
            log.warning("prometheus.tls_unverified", address=backend.address, namespace=namespace)
        return client

    def _secret(self, namespace: str, ref: SecretKeyRef, field: str, *, strip: bool = True) -> str:
        where = f"provider.prometheus.{field}"
        try:
            value = self.secrets.value(namespace, ref)
        except InvalidSpec as exc:
            raise InvalidSpec(*(f"{where}: {problem}" for problem in exc.problems)) from exc
        if not strip:
            return value
        # `echo token | kubectl create secret` leaves a newline; a header is one line.
        value = value.strip()
        if not value or "\n" in value or "\r" in value:
            what = "is empty" if not value else "holds a line break"
            raise InvalidSpec(
                f"{where}: Secret {namespace}/{ref.name} key {ref.key!r} {what}; "
                "a header value is one line of text"
            )
        return value


# CA bundles from Secrets, one file per client that uses one (requests takes a bundle as a
# path), removed with its client or at exit. Made on first use: most controllers never need it.
_ca_dir_lock = threading.Lock()
_ca_dir: list[str] = []


def _ca_file(pem: str, owner: object) -> str:
    with _ca_dir_lock:
        if not _ca_dir:
            _ca_dir.append(tempfile.mkdtemp(prefix="canary-ca-"))
            atexit.register(shutil.rmtree, _ca_dir[0], True)
    handle, path = tempfile.mkstemp(dir=_ca_dir[0], suffix=".pem")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(pem)
    weakref.finalize(owner, _remove, path)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _check_pem(pem: str, namespace: str, ref: SecretKeyRef) -> None:
    """InvalidSpec unless `pem` holds PEM certificates that OpenSSL accepts."""
    try:
        if "-----BEGIN CERTIFICATE-----" in pem:
            ssl.create_default_context(cadata=pem)
            return
        why = "no -----BEGIN CERTIFICATE----- line"
    except ssl.SSLError as exc:
        why = getattr(exc, "reason", None) or str(exc)
    raise InvalidSpec(
        f"provider.prometheus.tls.caBundle: Secret {namespace}/{ref.name} key {ref.key!r} "
        f"is not a PEM CA certificate ({why})"
    )
