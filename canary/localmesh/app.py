"""The demo service: one version of a tiny shop API with a chosen error rate and latency.

`python -m canary.localmesh.app --port P --version v2 --error-rate 0.2 --latency-ms 20` serves:

- `GET /` and `GET /browse` with `{"version": "v2", ...}`;
- `POST /checkout`, which first asks the shop's own `GET /inventory` through `--inventory-url`
  (the instance's inbound Envoy, so the call is traced as a child of the checkout), if given;
- `GET /inventory`, cheap: no injected latency or errors, it is the checkout's dependency.

Each of the first three answers a 503 for the given share of requests, drawn at random, after
sleeping the latency (plus a uniform jitter). `--slow-op /checkout --slow-ms 400
--slow-rate 0.05` adds 400 ms to that share of that one operation's requests: a regression a
whole service's latency can hide. The version in the body lets the load generator count what
users really got, independently of Envoy's own stats. `/healthz` always answers 200, so a
readiness check never depends on the error rate.

The trace context a request came with (`traceparent`, `tracestate`, `baggage`,
`x-request-id`) goes on with every call the app makes, so the call is part of the same trace.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str

    @property
    def name(self) -> str:
        """The span name the inbound Envoy gives its requests, e.g. `POST /checkout`."""
        return f"{self.method} {self.path}"


BROWSE = Operation("GET", "/browse")
CHECKOUT = Operation("POST", "/checkout")
INVENTORY = Operation("GET", "/inventory")
ROOT = Operation("GET", "/")
OPERATIONS = (BROWSE, CHECKOUT, INVENTORY, ROOT)

# W3C trace context and Envoy's request id: what makes a call part of its caller's trace.
PROPAGATED = ("traceparent", "tracestate", "baggage", "x-request-id")
_CALL_TIMEOUT_S = 2.0
# A checkout body is a few dozen bytes; anything past this is not read.
_MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Behaviour:
    version: str
    error_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    # One operation's path (`/checkout`) that is slower for a share of its requests.
    slow_path: str = ""
    slow_ms: float = 0.0
    slow_rate: float = 0.0
    # Where `POST /checkout` asks `GET /inventory` (the inbound Envoy); empty: it does not.
    inventory_url: str = ""

    def __post_init__(self) -> None:
        for name in ("error_rate", "slow_rate"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name.replace('_', ' ')} must be within [0, 1], got {share}")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0 or self.slow_ms < 0:
            raise ValueError("latency and jitter must not be negative")
        if self.slow_path and not self.slow_path.startswith("/"):
            raise ValueError(
                f"the slow operation is a path such as /checkout, not {self.slow_path!r}"
            )


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so Envoy and the load generator keep connections open between requests.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, the body waits for the peer's
    # delayed ACK, which adds ~40 ms to every response on a kept-alive connection.
    disable_nagle_algorithm = True
    server: DemoServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif path == INVENTORY.path:
            self._reply(200, {"version": self.server.behaviour.version, "stock": 7})
        elif path == BROWSE.path:
            self._serve(path, {"items": ["tea", "cake"]})
        else:
            self._serve(path, {})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        self._drain()
        if path != CHECKOUT.path:
            self._reply(404, {"version": self.server.behaviour.version, "error": "no such path"})
            return
        stock = self._inventory()
        if stock is None:
            self._reply(503, {"version": self.server.behaviour.version, "error": "no inventory"})
            return
        self._serve(path, {"order": "accepted"})

    def _serve(self, path: str, extra: dict[str, object]) -> None:
        behaviour = self.server.behaviour
        rng = self.server.rng
        with self.server.rng_lock:
            jitter = rng.uniform(-1.0, 1.0) * behaviour.latency_jitter_ms
            failed = rng.random() < behaviour.error_rate
            slow = path == behaviour.slow_path and rng.random() < behaviour.slow_rate
        delay_ms = max(0.0, behaviour.latency_ms + jitter) + (behaviour.slow_ms if slow else 0.0)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        if failed:
            self._reply(503, {"version": behaviour.version, "error": "injected by the demo"})
        else:
            self._reply(200, {"version": behaviour.version, **extra})

    def _inventory(self) -> object | None:
        """The stock `GET /inventory` answers, through the inbound Envoy; None when it fails.
        Without an inventory URL (the app alone, in a unit test) there is nothing to ask."""
        url = self.server.behaviour.inventory_url
        if not url:
            return 0
        parts = urllib.parse.urlsplit(url)
        headers = {name: value for name in PROPAGATED if (value := self.headers.get(name))}
        conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=_CALL_TIMEOUT_S
        )
        try:
            conn.request("GET", INVENTORY.path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                return None
            stock: object = json.loads(body).get("stock")
            return stock
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            return None
        finally:
            conn.close()

    def _drain(self) -> None:
        # An unread body would be taken for the next request on this kept-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            return
        if length:
            self.rfile.read(length)

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        # One line per request would flood the log file at the demo's request rate.
        return


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, behaviour: Behaviour, *, seed: int | None = None) -> None:
        self.behaviour = behaviour
        self.rng = random.Random(seed)
        # random.Random is not documented as thread-safe; handler threads share this one.
        self.rng_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)


def _parse(argv: list[str] | None) -> tuple[int, Behaviour]:
    parser = argparse.ArgumentParser(prog="python -m canary.localmesh.app", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True, help="reported in every response body")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of 503s, 0..1")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0)
    parser.add_argument("--slow-op", default="", help="the path of the slower operation")
    parser.add_argument("--slow-ms", type=float, default=0.0, help="what it adds, in ms")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="to what share, 0..1")
    parser.add_argument("--inventory-url", default="", help="where checkout asks the stock")
    args = parser.parse_args(argv)
    behaviour = Behaviour(
        version=args.version,
        error_rate=args.error_rate,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        slow_path=args.slow_op,
        slow_ms=args.slow_ms,
        slow_rate=args.slow_rate,
        inventory_url=args.inventory_url,
    )
    return args.port, behaviour


def main(argv: list[str] | None = None) -> None:
    port, behaviour = _parse(argv)
    server = DemoServer(port, behaviour)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
