"""A gate service for the webhook tests: it answers as we choose and records what it was sent.

Flagger's load tester (tests/loadtester) shows that Flagger's own gate service understands our
calls; this one shows what it cannot: the payload and headers exactly as received, and
answers that are slow, failing, huge, redirected or never complete.

It runs as its own process (`python tests/gates.py --port N --record FILE`: the standard
library's `ThreadingHTTPServer` on 127.0.0.1, in a session of its own, stopped by its pid through
`procs.Supervisor`). Every request but `/healthz` is appended to a JSONL file before it is
answered: method, path (with its query), headers and the JSON body (or the raw text).

Paths (any method; the query string tunes them):

- `/ok` 200; `/no` 403 with a reason in the body; `/error` 500 with a body; `/status?code=N` N.
- `/slow?seconds=N`: 200 after N seconds. `/hang?seconds=N`: nothing at all for N seconds
  (default 600), then the connection closes.
- `/trickle?part=headers|body&status=N`: a byte every 0.2 s, of the headers or of an N's (200)
  endless body.
- `/big?status=N&mb=M&pause=S`: N (200) with an M MB (3) body, pausing S seconds (0) after its
  first 128 KiB.
- `/redirect-other`: 302 to `http://127.0.0.2:<port>/ok`, another host; `/redirect-same`: 302
  to `/ok`; `/redirect-loop`: 302 to itself; `/redirect?to=URL&code=N`: N (302) to URL.
- `/flaky?fails=N&status=S&key=K&retry_after=R`: S (503, with `Retry-After: R` if given) for
  the first N calls with key K (default: the whole query), then 200.
- Flagger's gates: `/gate/check` 200 when open, else 403; `/gate/open`, `/gate/close` 202; the
  same for `/rollback/check|open|close` (closed at first); `/gate/approve` 200, `/gate/halt` 403.

The gates' state is per (namespace, name) from the payload, as in Flagger's load tester; a body
that is not such JSON is a 400.

With `--tls-cert` and `--tls-key` it serves HTTPS instead; `running(..., tls=True)` makes a
self-signed certificate for 127.0.0.1 with `openssl` (`GateService.certificate`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from canary.localmesh import procs

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
START_TIMEOUT = 15.0
# A handler that holds a connection (hang, trickle) gives up after this long, whatever it was asked.
LONGEST_HOLD = 600.0
TRICKLE_INTERVAL = 0.2
REFUSAL = "migration pending: schema v42 is not applied yet"


@dataclass(frozen=True)
class Received:
    """One request as the service got it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    def header(self, name: str) -> str | None:
        """A header's value, whatever the case of its name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass
class GateService:
    """The running service: its base URL and what it has received so far."""

    port: int
    record: Path
    certificate: Path | None = None

    @property
    def base_url(self) -> str:
        scheme = "http" if self.certificate is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def received(self, route: str | None = None) -> list[Received]:
        """The requests recorded so far, oldest first; only those to `route` when given."""
        try:
            lines = self.record.read_text().splitlines()
        except FileNotFoundError:
            return []
        every = [Received(**json.loads(line)) for line in lines if line.strip()]
        return [r for r in every if route is None or r.route == route]


@contextlib.contextmanager
def running(workdir: Path, *, tls: bool = False) -> Iterator[GateService]:
    """The service on a free loopback port, ready; stopped (by its pid) when the block ends.

    With `tls`, it serves HTTPS with a fresh self-signed certificate for 127.0.0.1.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    record = workdir / "received.jsonl"
    tls_args: list[str] = []
    certificate = None
    if tls:
        certificate, key = _self_signed(workdir)
        tls_args = ["--tls-cert", str(certificate), "--tls-key", str(key)]
    with procs.Supervisor(workdir) as supervisor:
        failure: Exception | None = None
        # The picked port may be taken before the child binds it: then try another, twice.
        for attempt in range(3):
            port = procs.free_port()
            process = supervisor.start(
                f"gates-{attempt}",
                [
                    sys.executable,
                    str(SCRIPT),
                    "--port",
                    str(port),
                    "--record",
                    str(record),
                    *tls_args,
                ],
                cwd=REPO,
            )
            try:
                _wait_listening(process, port)
            except procs.ProcessFailed as exc:
                failure = exc
                process.stop()
                continue
            yield GateService(port=port, record=record, certificate=certificate)
            return
        assert failure is not None
        raise failure


def _wait_listening(process: procs.Process, port: int) -> None:
    """Until the service prints that it serves (HTTP or HTTPS alike), or fails saying why."""
    deadline = time.monotonic() + START_TIMEOUT
    for _ in range(int(START_TIMEOUT / 0.05) + 1):
        if f"serving on 127.0.0.1:{port}" in process.log_tail(5):
            return
        if not process.alive():
            raise process.failure("exited before it served")
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    raise procs.ProcessFailed(f"gates did not serve on port {port} within {START_TIMEOUT:g}s")


def _self_signed(workdir: Path) -> tuple[Path, Path]:
    certificate, key = workdir / "gates.crt", workdir / "gates.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return certificate, key


@pytest.fixture(scope="module")
def gate_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateService]:
    """The gate service for a module's tests (import it into a conftest.py to use it)."""
    with running(tmp_path_factory.mktemp("gates")) as service:
        yield service


# The service itself: the code below runs in its own process.


class _State:
    def __init__(self, record: Path) -> None:
        self.record = record
        self.lock = threading.Lock()
        self.open: set[str] = set()
        self.calls: dict[str, int] = {}

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry) + "\n"
        with self.lock, self.record.open("a") as out:
            out.write(line)

    def count(self, key: str) -> int:
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            return self.calls[key]


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.command} {self.path} {format % args}\n")

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode(errors="replace") if length else ""
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        if route == "/healthz":
            self._answer(200, "OK")
            return
        self.state.write(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": body,
                "at": time.time(),
            }
        )
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(route, query, body)

    def _route(self, route: str, query: dict[str, str], body: Any) -> None:
        simple = {"/ok": (200, "OK"), "/no": (403, REFUSAL), "/error": (500, "internal error")}
        if route in simple:
            self._answer(*simple[route])
        elif route == "/status":
            self._answer(int(query.get("code", "200")), f"status {query.get('code', '200')}")
        elif route == "/slow":
            time.sleep(min(float(query.get("seconds", "1")), LONGEST_HOLD))
            self._answer(200, "OK, slowly")
        elif route == "/hang":
            time.sleep(min(float(query.get("seconds", LONGEST_HOLD)), LONGEST_HOLD))
            self.close_connection = True
        elif route == "/trickle":
            self._trickle(query.get("part", "body"), int(query.get("status", "200")))
        elif route == "/big":
            self._big(
                int(query.get("status", "200")),
                float(query.get("mb", "3")),
                min(float(query.get("pause", "0")), LONGEST_HOLD),
            )
        elif route.startswith("/redirect"):
            self._redirect(route, query)
        elif route == "/flaky":
            key = query.get("key", urlsplit(self.path).query)
            if self.state.count(key) <= int(query.get("fails", "1")):
                after = query.get("retry_after")
                extra = {} if after is None else {"Retry-After": after}
                self._answer(int(query.get("status", "503")), "not yet", extra)
            else:
                self._answer(200, "OK at last")
        elif route == "/gate/approve":
            self._answer(200, "Approved")
        elif route == "/gate/halt":
            self._answer(403, "Forbidden")
        elif route.startswith(("/gate/", "/rollback/")):
            self._gate(route, body)
        else:
            self._answer(404, f"no such path: {route}")

    def _gate(self, route: str, body: Any) -> None:
        prefix, _, verb = route.strip("/").partition("/")
        if verb not in {"check", "open", "close"}:
            self._answer(404, f"no such path: {route}")
            return
        if not (
            isinstance(body, dict)
            and isinstance(body.get("name"), str)
            and isinstance(body.get("namespace"), str)
        ):
            self._answer(400, "a webhook payload with name and namespace is needed")
            return
        key = f"{prefix}:{body['namespace']}/{body['name']}"
        with self.state.lock:
            if verb == "open":
                self.state.open.add(key)
            elif verb == "close":
                self.state.open.discard(key)
            is_open = key in self.state.open
        if verb != "check":
            self._answer(202, "")
        elif is_open:
            self._answer(200, "Approved")
        else:
            self._answer(403, "Forbidden")

    def _redirect(self, route: str, query: dict[str, str]) -> None:
        port = self.connection.getsockname()[1]
        locations = {
            "/redirect-other": f"http://127.0.0.2:{port}/ok",
            "/redirect-same": "/ok",
            "/redirect-loop": "/redirect-loop",
        }
        location = locations.get(route) or query.get("to")
        if location is None:
            self._answer(404, f"no such path: {route}")
            return
        self.send_response(int(query.get("code", "302")))
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _big(self, status: int, megabytes: float, pause: float) -> None:
        size = int(megabytes * 1024 * 1024)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * 65536
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            self.wfile.write(piece)
            sent += len(piece)
            if pause and sent == 2 * len(block):
                self.wfile.flush()
                time.sleep(pause)

    def _trickle(self, part: str, status: int) -> None:
        if part == "headers":
            self.wfile.write(f"HTTP/1.1 {status} Trickling\r\n".encode())
            # An endless header, one byte at a time.
            drip = b"X-Trickle: " + b"x" * 100_000
        else:
            self.send_response(status)
            self.send_header("Content-Length", str(10_000_000))
            self.end_headers()
            drip = b"x" * 100_000
        deadline = time.monotonic() + LONGEST_HOLD
        for byte in drip:
            if time.monotonic() >= deadline:
                break
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(TRICKLE_INTERVAL)
        self.close_connection = True

    def _answer(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    args = parser.parse_args(argv)
    _Handler.state = _State(args.record)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    scheme = "http"
    if args.tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        # The handshake in each request's thread, not in the one that accepts connections.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        scheme = "https"
    print(
        f"gates: {scheme} serving on 127.0.0.1:{args.port}, recording to {args.record}", flush=True
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
