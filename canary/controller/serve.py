"""The controller's HTTP face: `/healthz` and `/readyz` for the kubelet, `/metrics` for Prometheus,
and the POST routes the composition root adds (Slack's interactions, `controller/interactions.py`).

Liveness and readiness answer different questions. `/healthz` fails only when the process's
loop is stuck or dead, which a restart fixes. `/readyz` fails while something the controller
needs is missing (caches not yet synced, say) and names it, so `kubectl describe pod` says what
the pod waits for. Leadership belongs in neither: a standby replica is healthy and ready, and a
Deployment whose standby never turned ready would never finish rolling out.

The server is the standard library's threading HTTP server on a daemon thread: three GET paths
do not justify a framework, and a slow scrape never holds up a probe.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = structlog.get_logger("canary.serve")

# A client that connects and stays silent gives its handler thread back after this long.
_REQUEST_TIMEOUT = 10.0
# How often the serving loop looks for a shutdown request; stop() waits about this long.
_POLL_SECONDS = 0.1
# After refusing a body unread (413), at most this much of it is read away, so the client reads
# the answer rather than a reset; a bigger one is cut off.
_DRAIN_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Answer:
    """A POST route's answer; `then` runs once it was sent (work the caller must not wait for)."""

    status: int
    body: str = ""
    then: Callable[[], None] | None = None


# A POST route: the request's headers (names in lower case) and its body stream, which the
# route reads itself (it bounds what it reads); an Answer out.
PostRoute = Callable[[Mapping[str, str], io.BufferedIOBase], Answer]


def parse_address(address: str) -> tuple[str, int]:
    """`host:port`, `:port` (every interface) or `[v6]:port`, as `--metrics-address` takes it."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address needs brackets, as in [::]:8080; got {address!r}")
    number = int(port)
    if number > 65535:
        raise ValueError(f"port out of range in {address!r}")
    return host, number


class _Server(ThreadingHTTPServer):
    # Handler threads must not keep the process alive, nor make close() wait for a slow client.
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        registry: CollectorRegistry,
        alive: Callable[[], bool],
        missing: Callable[[], Sequence[str]],
        posts: Mapping[str, PostRoute],
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.registry = registry
        self.alive = alive
        self.missing = missing
        self.posts = posts
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _REQUEST_TIMEOUT

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/healthz":
            self._healthz()
        elif path == "/readyz":
            self._readyz()
        elif path == "/metrics":
            self._metrics()
        else:
            self._send(HTTPStatus.NOT_FOUND, "not found: try /healthz, /readyz or /metrics\n")

    def do_POST(self) -> None:
        route = self.server.posts.get(self.path.partition("?")[0])
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, "not found\n")
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            answer = route(headers, self.rfile)
        except Exception as exc:  # a route's bug costs its request, not the server
            log.exception("http.post_failed", path=self.path)
            answer = Answer(HTTPStatus.INTERNAL_SERVER_ERROR, f"failed: {exc}\n")
        self._send(HTTPStatus(answer.status), answer.body)
        if answer.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            self._drain(headers.get("content-length", ""))
        if answer.then is not None:
            try:
                answer.then()
            except Exception:
                log.exception("http.post_after_failed", path=self.path)

    def _drain(self, length: str) -> None:
        left = min(int(length), _DRAIN_BYTES) if length.isdigit() else 0
        self.connection.settimeout(1.0)
        try:
            while left > 0 and (chunk := self.rfile.read1(min(left, 65536))):
                left -= len(chunk)
        except OSError:
            pass

    def _healthz(self) -> None:
        try:
            alive = self.server.alive()
        except Exception as exc:  # a probe answers; it never takes the server down
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, f"health check failed: {exc}\n")
            return
        if alive:
            self._send(HTTPStatus.OK, "ok\n")
        else:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "the controller loop is not running\n")

    def _readyz(self) -> None:
        try:
            missing = list(self.server.missing())
        except Exception as exc:  # a probe answers; it never takes the server down
            missing = [f"readiness check failed: {exc}"]
        if missing:
            text = "".join(f"waiting for {what}\n" for what in missing)
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, text)
        else:
            self._send(HTTPStatus.OK, "ok\n")

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception as exc:  # a broken collector costs one scrape, not the server
            log.exception("metrics.failed")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"collecting metrics failed: {exc}\n")
            return
        self._send(HTTPStatus.OK, body, content_type=content_type)

    def _send(
        self,
        status: HTTPStatus,
        body: str | bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The kubelet probes every few seconds; those lines belong at debug, in our format.
        log.debug("http.request", client=self.client_address[0], line=format % args)


class HealthServer:
    """Serves /healthz, /readyz and /metrics on a daemon thread; `port` is the bound port.

    `alive` says whether the controller's loop runs; `missing` lists what readiness waits for
    (empty when ready). Both are called on each probe, from the server's threads.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        alive: Callable[[], bool],
        missing: Callable[[], Sequence[str]] = tuple,
        host: str = "127.0.0.1",
        port: int = 0,
        posts: Mapping[str, PostRoute] | None = None,
    ) -> None:
        # Binding here, not in start(), so a port in use fails the command at once.
        self._server = _Server(
            (host, port), registry=registry, alive=alive, missing=missing, posts=posts or {}
        )
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="canary-health",
            daemon=True,
        )
        self._thread.start()
        log.info("serve.started", host=self.host, port=self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; waits at most about `timeout` seconds."""
        thread, self._thread = self._thread, None
        if thread is not None:
            # shutdown() waits for serve_forever to notice, so it runs only once that has
            # started; our own thread bounds the wait in case the loop is wedged.
            stopper = threading.Thread(target=self._server.shutdown, daemon=True)
            stopper.start()
            stopper.join(timeout)
            thread.join(max(0.0, timeout))
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
