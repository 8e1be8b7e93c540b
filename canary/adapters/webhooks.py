"""Webhooks as gates and hooks: Flagger's JSON POST, where any 2xx answer means yes.

This module owns the HTTP side of a webhook call, and nothing else: the payload and the
headers' values arrive ready in a `WebhookRequest` (`canary/controller/hooks.py` builds them,
Flagger's way), and what comes back is a `GateResult`, never an exception. A gate never passes
by default: a timeout, a refused connection, a non-2xx answer or a refused redirect is a "no"
that says why, and the status code alone decides (the body only explains a "no").

The policy, in one place:

- Retries: urllib3's `Retry` on the adapter, `total=request.retries`, for connection and read
  errors and for 429, 500, 502, 503 and 504, POST included (a gate's question has no side
  effects worth guarding; Flagger retries the same way). The waits between attempts back off
  from 0.4 s and never exceed `MAX_WAIT`, a server's `Retry-After` included: it is respected,
  but it cannot park a check for minutes.
- Time: `request.timeout` bounds the connect and every socket read of one attempt, and the
  whole call, retries, waits and redirects together, has a wall-clock deadline of
  `timeout x (retries + 1) + retries x MAX_WAIT` (plus a second's grace, so that an ordinary
  timeout is reported as one). A per-read timeout alone never ends a server
  that trickles a byte at a time, in its headers or its body, so at the deadline a watchdog
  shuts the call's sockets down and no further attempt starts.
- Size: the answer is streamed. A 2xx's body is never read; a refusal's is read up to
  `MAX_BODY` bytes (within the deadline) for the message's first `MESSAGE_CHARS` characters,
  so a 3 MB answer costs what 64 KiB do.
- Redirects: the gate's "yes" must come from the host the Canary names, and the request's
  headers carry credentials read from Secrets, which must never travel to another host. So a
  redirect to another origin (scheme, host or port differ, http to https included) is refused,
  and says where it pointed. A redirect to the same origin is followed, at most
  `MAX_REDIRECTS` hops, re-sending the same POST with its body and headers whatever the 3xx
  (301/302/303 included): the payload is the gate's question, and the GET a browser would
  make instead would ask nothing.
- TLS certificates are verified (requests' default, its CA bundle).

Each call has a session and a connection pool of its own: calls are rare (one per gate per
check), the scheduler may run Canaries' ticks on several threads, and the watchdog then knows
exactly which sockets are the call's.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from canary.engine.observation import GateResult
from canary.ports import WebhookRequest

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_FACTOR = 0.2
MAX_WAIT = 5.0
DEADLINE_GRACE = 1.0
MAX_REDIRECTS = 3
MAX_BODY = 64 * 1024
MESSAGE_CHARS = 200
_CHUNK = 8 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpWebhooks:
    """The `WebhookCaller` over HTTP(S) with requests; see the module's docstring for the policy."""

    def call(self, request: WebhookRequest) -> GateResult:
        attempts = request.retries + 1
        budget = request.timeout * attempts + request.retries * MAX_WAIT + DEADLINE_GRACE
        watch = _Watch(budget)
        _current.watch = watch
        try:
            with requests.Session() as session:
                adapter = _WatchedAdapter(max_retries=_retry_policy(request.retries))
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                return _exchange(session, request, watch)
        except Exception as exc:  # a gate says no with why; it never raises
            return _failure(request, watch, exc)
        finally:
            _current.watch = None
            watch.stop()


def _retry_policy(retries: int) -> Retry:
    return _DeadlineRetry(
        total=retries,
        other=0,
        redirect=False,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"POST"},
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=MAX_WAIT,
        retry_after_max=int(MAX_WAIT),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def _exchange(session: requests.Session, request: WebhookRequest, watch: _Watch) -> GateResult:
    body = json.dumps(dict(request.payload)).encode()
    headers = {"Content-Type": "application/json", **request.headers}
    origin = _origin(request.url)
    url = request.url
    status = 0
    for hop in range(MAX_REDIRECTS + 1):
        answer = session.post(
            url,
            data=body,
            headers=headers,
            timeout=(request.timeout, request.timeout),
            allow_redirects=False,
            stream=True,
        )
        with answer:
            if watch.expired:
                # The watchdog ended the socket mid-answer; what http.client made of the rest
                # (a status line, no end of headers) is no answer.
                raise TimeoutError("the call's deadline passed")
            status = answer.status_code
            if 200 <= status < 300:
                return GateResult(passed=True, message=f"HTTP {status}")
            location = answer.headers.get("Location") if answer.is_redirect else None
            if location is None:
                return GateResult(passed=False, message=_refusal(status, answer, watch))
        target = urljoin(url, location)
        if _origin(target) != origin:
            return GateResult(
                passed=False,
                message=f"HTTP {status}: redirect to {target} refused "
                f"(a gate must answer from {_show(origin)})",
            )
        if hop == MAX_REDIRECTS:
            break
        url = target
    return GateResult(
        passed=False, message=f"HTTP {status}: more than {MAX_REDIRECTS} redirects ({url})"
    )


def _refusal(status: int, answer: requests.Response, watch: _Watch) -> str:
    """`HTTP 403: <the body's start>`, from at most MAX_BODY bytes read before the deadline."""
    read = bytearray()
    with contextlib.suppress(Exception):  # what arrived explains; the status already decided
        while len(read) < MAX_BODY and not watch.expired:
            chunk = answer.raw.read(min(_CHUNK, MAX_BODY - len(read)), decode_content=True)
            if not chunk:
                break
            read += chunk
    text = " ".join(read.decode(errors="replace").split())
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS] + "…"
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def _failure(request: WebhookRequest, watch: _Watch, exc: Exception) -> GateResult:
    if watch.expired:
        message = f"{request.url} timed out: no whole answer within {watch.seconds:g}s"
    elif _timed_out(exc):
        message = f"{request.url} timed out after {request.timeout:g}s"
        if request.retries:
            message += f", {request.retries + 1} attempts"
    elif isinstance(exc, requests.ConnectionError):
        message = f"{request.url} unreachable: {_reason(exc)}"
    else:
        message = f"{request.url} cannot be called: {_reason(exc)}"
    return GateResult(passed=False, message=message)


def _retry_reason(exc: BaseException) -> BaseException:
    """What a requests error wraps: the last error of urllib3's attempts."""
    if isinstance(exc, requests.RequestException) and exc.args:
        inner = exc.args[0]
        if isinstance(inner, BaseException):
            exc = inner
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    return exc


def _timed_out(exc: Exception) -> bool:
    if isinstance(exc, requests.Timeout):
        return True
    reason = _retry_reason(exc)
    if isinstance(reason, NewConnectionError):  # urllib3 makes it a ConnectTimeoutError too
        return False
    return isinstance(reason, ReadTimeoutError | ConnectTimeoutError | TimeoutError)


def _reason(exc: Exception) -> str:
    """The innermost why, e.g. `[Errno 111] Connection refused`, not urllib3's wrappers."""
    reason = _retry_reason(exc)
    for _ in range(8):
        if isinstance(reason, ProtocolError) and len(reason.args) > 1:
            inner = reason.args[1]
            if isinstance(inner, BaseException):
                reason = inner
                continue
        if reason.__cause__ is None:
            break
        reason = reason.__cause__
    return str(reason) or type(reason).__name__


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def _show(origin: tuple[str, str, int | None]) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


# The deadline and the sockets of the call running on this thread: urllib3 opens a call's
# connections and sleeps between its attempts on the caller's thread.
class _Current(threading.local):
    watch: _Watch | None = None


_current = _Current()


class _Watch:
    """One call's wall-clock deadline; when it passes, the call's sockets are shut down."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def add(self, connection: HTTPConnection) -> None:
        with self._lock:
            if not self.expired:
                self._connections.append(connection)
                return
        _shut(connection)

    def stop(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            connections, self._connections = self._connections, []
        for connection in connections:
            _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    """Ends the connection's socket under a thread blocked in it (a recv returns at once).

    `socket.socket.shutdown` itself, not an `SSLSocket`'s, which would touch TLS state that
    the reading thread is using.
    """
    sock = connection.sock
    if sock is not None and sock.fileno() >= 0:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _DeadlineRetry(Retry):
    """urllib3's Retry, but no attempt starts and no wait outlasts the call's deadline."""

    def is_exhausted(self) -> bool:
        watch = _current.watch
        return super().is_exhausted() or (watch is not None and watch.expired)

    def get_backoff_time(self) -> float:
        return _within_deadline(super().get_backoff_time())

    def parse_retry_after(self, retry_after: str) -> float:
        return _within_deadline(super().parse_retry_after(retry_after))


def _within_deadline(seconds: float) -> float:
    watch = _current.watch
    return seconds if watch is None else min(seconds, watch.remaining())


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self)


def _watch(connection: HTTPConnection) -> None:
    watch = _current.watch
    if watch is not None:
        watch.add(connection)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections (direct or through an HTTP proxy) are watched."""

    _POOLS: ClassVar[dict[str, type[HTTPConnectionPool]]] = {
        "http": _WatchedHTTPPool,
        "https": _WatchedHTTPSPool,
    }

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # a SOCKS proxy keeps its own pools
            manager.pool_classes_by_scheme = dict(self._POOLS)
        return manager
