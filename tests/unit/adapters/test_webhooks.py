"""Webhook gates against a real HTTP server on loopback: 2xx is yes, anything else says why."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from canary.adapters import webhooks
from canary.api.spec import Webhook
from canary.ports import CanaryKey

KEY = CanaryKey("shop", "accounts")
received: list[dict[str, object]] = []


class Gate(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        received.append(body)
        if self.path == "/slow":
            time.sleep(2)
        code = {"/yes": 200, "/no": 403}.get(self.path, 500)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"" if code == 200 else b"migration pending")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gate_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _hook(url: str, timeout: str = "5s") -> Webhook:
    return Webhook.model_validate(
        {
            "name": "db",
            "type": "pre-rollout",
            "url": url,
            "timeout": timeout,
            "metadata": {"a": "b"},
        }
    )


def test_a_2xx_answer_opens_the_gate_and_carries_the_payload(gate_url: str) -> None:
    result = webhooks.call_gate(KEY, _hook(f"{gate_url}/yes"), "Initializing")
    assert result.passed
    assert received[-1] == {
        "name": "accounts",
        "namespace": "shop",
        "webhook": "db",
        "type": "pre-rollout",
        "phase": "Initializing",
        "metadata": {"a": "b"},
    }


def test_a_refusal_says_the_status_and_the_reason(gate_url: str) -> None:
    result = webhooks.call_gate(KEY, _hook(f"{gate_url}/no"), "Initializing")
    assert not result.passed
    assert result.message == "HTTP 403: migration pending"


def test_a_slow_gate_times_out_as_a_no(gate_url: str) -> None:
    result = webhooks.call_gate(KEY, _hook(f"{gate_url}/slow", timeout="300ms"), "Progressing")
    assert not result.passed
    assert "unreachable" in result.message


def test_nobody_listening_is_a_no() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = webhooks.call_gate(KEY, _hook(f"http://127.0.0.1:{port}/x"), "Progressing")
    assert not result.passed
    assert "refused" in result.message.lower()
