"""The demo service: one version of a tiny HTTP API with a chosen error rate and latency.

`python -m canary.localmesh.app --port P --version v2 --error-rate 0.2 --latency-ms 20` serves
`GET /` with `{"version": "v2"}`, or a 503 for the given share of requests, each drawn at
random, after sleeping the latency (plus a uniform jitter). The version in the body lets the
load generator count what users really got, independently of Envoy's own stats. `/healthz`
always answers 200, so a readiness check never depends on the error rate.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True, slots=True)
class Behaviour:
    version: str
    error_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error rate must be within [0, 1], got {self.error_rate}")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("latency and jitter must not be negative")


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so Envoy and the load generator keep connections open between requests.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, the body waits for the peer's
    # delayed ACK, which adds ~40 ms to every response on a kept-alive connection.
    disable_nagle_algorithm = True
    server: DemoServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/healthz":
            self._reply(200, {"status": "ok"})
            return
        behaviour = self.server.behaviour
        rng = self.server.rng
        with self.server.rng_lock:
            jitter = rng.uniform(-1.0, 1.0) * behaviour.latency_jitter_ms
            failed = rng.random() < behaviour.error_rate
        delay_ms = max(0.0, behaviour.latency_ms + jitter)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        if failed:
            self._reply(503, {"version": behaviour.version, "error": "injected by the demo"})
        else:
            self._reply(200, {"version": behaviour.version})

    def _reply(self, status: int, body: dict[str, str]) -> None:
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
    args = parser.parse_args(argv)
    behaviour = Behaviour(
        version=args.version,
        error_rate=args.error_rate,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
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
