"""One real Prometheus for the adapter tests, scraping one tiny exporter on loopback every second.

Started once per session (a Prometheus 2 hands its first target to a scrape loop only after
about five seconds): each module publishes the series it needs, under names of its own, and
waits until Prometheus shows them.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from canary.localmesh import procs
from canary.localmesh.prometheus import Target, start_prometheus

# How long to wait for Prometheus to show what the exporter serves (1 s scrapes).
SEEN_TIMEOUT = 15.0


class Exporter(BaseHTTPRequestHandler):
    """Serves each module's exposition text, then `series` (series text -> value)."""

    texts: ClassVar[list[bytes]] = []
    series: ClassVar[dict[str, float]] = {}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            lines = "".join(f"{name} {value:g}\n" for name, value in self.series.items())
            body = b"".join(self.texts) + lines.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Scraped:
    url: str

    def value(self, query: str) -> float | None:
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        with urllib.request.urlopen(address, timeout=5) as response:
            result: list[Any] = json.load(response)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def publish(self, text: bytes, *, seen: str) -> None:
        """Adds an exposition text (series no other module uses) and waits until Prometheus
        answers the query `seen`."""
        with Exporter.lock:
            if text not in Exporter.texts:
                Exporter.texts.append(text)
        self._wait(lambda: self.value(seen) is not None, f"{seen} never showed")

    def set_and_wait(self, changes: Mapping[str, float]) -> float:
        """Serves `changes`, waits until Prometheus has them all, and returns a moment (Unix
        seconds) at which every one of them is stored: a window ending there counts them, one
        starting there does not."""
        with Exporter.lock:
            Exporter.series.update(changes)
        self._wait(
            lambda: all(self.value(series) == value for series, value in changes.items()),
            f"Prometheus never showed {dict(changes)}",
        )
        # The windows are read on a one-second grid: a second after the sample is seen, the
        # grid point at or before the moment comes after the sample's own timestamp. The
        # margin after it lets a scrape stamped before the moment finish reading the exporter
        # before the caller changes anything.
        moment = time.time() + 1.1
        time.sleep(max(0.0, moment - time.time()) + 0.6)
        return moment

    @staticmethod
    def _wait(done: Any, failure: str) -> None:
        deadline = time.monotonic() + SEEN_TIMEOUT
        while not done():
            assert time.monotonic() < deadline, failure
            time.sleep(0.2)


@pytest.fixture(scope="session")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    try:
        with procs.Supervisor(workdir / "logs") as supervisor:
            handle = start_prometheus(
                supervisor,
                targets={"exporter": [Target(f"127.0.0.1:{exporter.server_address[1]}")]},
                workdir=workdir,
                port=procs.free_port(),
            )
            handle.wait_targets_up(expected=1, timeout=30)
            yield Scraped(handle.url)
    finally:
        exporter.shutdown()
        exporter.server_close()
