"""The demo's users: a steady stream of requests, and a record of what each of them got.

Envoy's stats say what the proxy saw; this says what users saw, counted from the response
itself (the version in the body, the status code), per second since the start, so the demo
can show that a rollback really took bad answers away from people.

Requests are paced open-loop: request i is due at start + i/rate, whoever is free takes it.
A slow backend therefore does not lower the offered rate, as it would with each worker
waiting for its own answer; a slot more than a second late is counted as missed instead of
sent in a burst. The run is bounded twice: by `duration_s` and by rate * duration requests.

A run can mix operations (`GET /browse` mostly, `POST /checkout` sometimes): each slot takes
the next request of a fixed schedule spreading each operation's weight evenly, so the shares
are exact over any few dozen requests, not left to chance.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

# A status of 0 means no HTTP answer at all (refused, reset, timed out).
NO_RESPONSE = 0
UNKNOWN_VERSION = "?"
# A slot this late is skipped, not sent: catching up would be a burst no user makes.
MAX_LAG_S = 1.0


@dataclass(frozen=True, slots=True)
class Request:
    """One kind of request a user sends: `POST /checkout` with a small JSON body, say."""

    method: str
    path: str
    body: bytes | None = None


def schedule(mix: Sequence[tuple[Request, int]]) -> tuple[Request, ...]:
    """One round of requests, each `weight` times, spread evenly (smooth weighted round
    robin): `[(browse, 4), (checkout, 1)]` gives browse, browse, checkout, browse, browse."""
    if not mix or any(weight < 1 for _, weight in mix):
        raise ValueError("a mix needs at least one request, each with a positive weight")
    total = sum(weight for _, weight in mix)
    credit = [0] * len(mix)
    chosen: list[Request] = []
    for _ in range(total):
        for index, (_, weight) in enumerate(mix):
            credit[index] += weight
        best = max(range(len(mix)), key=lambda index: credit[index])
        credit[best] -= total
        chosen.append(mix[best][0])
    return tuple(chosen)


@dataclass(frozen=True, slots=True)
class Outcome:
    version: str
    status: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counts so far: per whole second since the start, by (version, status)."""

    per_second: dict[int, dict[Outcome, int]]
    sent: int
    missed: int
    elapsed_s: float
    totals: dict[Outcome, int] = field(default_factory=dict)

    def by_version(self) -> dict[str, dict[int, int]]:
        """Status-code counts per version over the whole run."""
        result: dict[str, dict[int, int]] = {}
        for outcome, count in self.totals.items():
            codes = result.setdefault(outcome.version, {})
            codes[outcome.status] = codes.get(outcome.status, 0) + count
        return result


class LoadGenerator:
    def __init__(
        self,
        url: str,
        *,
        rate_per_second: float,
        duration_s: float,
        concurrency: int = 4,
        timeout_s: float = 5.0,
        host_header: str | None = None,
        mix: Sequence[tuple[Request, int]] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: call over TLS trusting this context's roots, naming the Host header's host
        in SNI and checking the certificate against it (as a browser calling that name would)."""
        if rate_per_second <= 0 or duration_s <= 0 or concurrency < 1:
            raise ValueError("rate, duration and concurrency must be positive")
        parts = urllib.parse.urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # Without a mix, every request is a GET of the URL's path.
        self._schedule = schedule(mix) if mix else (Request("GET", path),)
        self.rate = rate_per_second
        self.duration = duration_s
        self.limit = int(rate_per_second * duration_s)
        self.timeout = timeout_s
        # The client-side Envoy routes by Host, as a sidecar does: callers name the service.
        self._headers = {"Host": host_header} if host_header else {}
        self._tls = tls
        self._server_name = (
            (host_header or self._host).rpartition(":")[0] or host_header or self._host
        )
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next = 0
        self._sent = 0
        self._missed = 0
        self._per_second: dict[int, Counter[Outcome]] = {}
        self._started = 0.0

    def start(self) -> LoadGenerator:
        self._started = time.monotonic()
        for index in range(self._concurrency):
            thread = threading.Thread(target=self._work, name=f"loadgen-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stops taking new slots and waits (bounded) for requests in flight."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def wait(self, *, timeout: float | None = None) -> None:
        """Waits until the run ends on its own (duration or count reached)."""
        limit = self.duration + self.timeout + 1.0 if timeout is None else timeout
        deadline = time.monotonic() + limit
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def snapshot(self) -> Snapshot:
        with self._lock:
            per_second = {second: dict(counts) for second, counts in self._per_second.items()}
            sent, missed = self._sent, self._missed
        totals: Counter[Outcome] = Counter()
        for counts in per_second.values():
            totals.update(counts)
        elapsed = time.monotonic() - self._started if self._started else 0.0
        return Snapshot(
            per_second=per_second,
            sent=sent,
            missed=missed,
            elapsed_s=elapsed,
            totals=dict(totals),
        )

    def _take_slot(self) -> tuple[float, Request] | None:
        """The due time and request of the next slot, or None when the run is over."""
        with self._lock:
            while self._next < self.limit:
                due = self._started + self._next / self.rate
                request = self._schedule[self._next % len(self._schedule)]
                self._next += 1
                if time.monotonic() - due <= MAX_LAG_S:
                    return due, request
                self._missed += 1
            return None

    def _work(self) -> None:
        # One connection per thread, kept alive: a user agent's behaviour, and far cheaper
        # than a TCP handshake per request for a Python client on a small machine.
        conn: http.client.HTTPConnection | None = None
        end = self._started + self.duration
        try:
            while not self._stop.is_set():
                slot = self._take_slot()
                if slot is None or slot[0] >= end:
                    return
                due, request = slot
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                if conn is None:
                    conn = self._connection()
                outcome, keep = self._request(conn, request)
                if not keep:
                    conn.close()
                    conn = None
                self._record(due, outcome)
        finally:
            if conn is not None:
                conn.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self._tls is None:
            return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return NamedTLSConnection(
            self._host,
            self._port,
            timeout=self.timeout,
            context=self._tls,
            server_name=self._server_name,
        )

    def _request(self, conn: http.client.HTTPConnection, request: Request) -> tuple[Outcome, bool]:
        headers = self._headers
        if request.body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            conn.request(request.method, request.path, body=request.body, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            return Outcome(UNKNOWN_VERSION, NO_RESPONSE), False
        return Outcome(_version(body), response.status), not response.will_close

    def _record(self, due: float, outcome: Outcome) -> None:
        second = int(due - self._started)
        with self._lock:
            self._sent += 1
            self._per_second.setdefault(second, Counter())[outcome] += 1


class NamedTLSConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with SNI and the certificate check for another name: an external
    host (`shop.example.test`) whose gateway listens on loopback."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        context: ssl.SSLContext,
        server_name: str,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls_context = context
        self.server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self.server_name)


def _version(body: bytes) -> str:
    # Envoy's own answers (no healthy upstream, an injected fault) carry no version.
    with contextlib.suppress(ValueError, AttributeError):
        version = json.loads(body).get("version")
        if isinstance(version, str):
            return version
    return UNKNOWN_VERSION
