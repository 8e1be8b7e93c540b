"""The health and metrics server over real HTTP on loopback."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canary.controller.serve import HealthServer, parse_address
from canary.controller.telemetry import Telemetry


class State:
    def __init__(self) -> None:
        self.alive = True
        self.missing: Sequence[str] = ()
        self.broken = False

    def is_alive(self) -> bool:
        if self.broken:
            raise RuntimeError("loop state unreadable")
        return self.alive

    def waiting_for(self) -> Sequence[str]:
        if self.broken:
            raise RuntimeError("cache state unreadable")
        return self.missing


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


@pytest.fixture
def server(state: State, telemetry: Telemetry) -> Iterator[HealthServer]:
    with HealthServer(
        registry=telemetry.registry, alive=state.is_alive, missing=state.waiting_for
    ) as running:
        yield running


def get(server: HealthServer, path: str, accept: str = "") -> tuple[int, str, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", headers={"Accept": accept} if accept else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_a_free_port_is_chosen_and_exposed(server: HealthServer) -> None:
    assert server.port > 0
    assert server.host == "127.0.0.1"


def test_healthz_follows_the_loop(server: HealthServer, state: State) -> None:
    assert get(server, "/healthz")[::2] == (200, "ok\n")
    state.alive = False
    status, _, text = get(server, "/healthz")
    assert status == 503
    assert "not running" in text


def test_readyz_names_what_it_waits_for(server: HealthServer, state: State) -> None:
    state.missing = ("the Canary cache to sync", "the VirtualService cache to sync")
    status, content_type, text = get(server, "/readyz")
    assert (status, content_type) == (503, "text/plain; charset=utf-8")
    assert text.splitlines() == [
        "waiting for the Canary cache to sync",
        "waiting for the VirtualService cache to sync",
    ]
    state.missing = ()
    assert get(server, "/readyz?verbose")[::2] == (200, "ok\n")


def test_a_failing_check_is_a_503_that_says_why(server: HealthServer, state: State) -> None:
    state.broken = True
    assert get(server, "/healthz")[0] == 503
    status, _, text = get(server, "/readyz")
    assert status == 503
    assert "cache state unreadable" in text


def test_metrics_serve_the_controllers_registry_in_the_text_format(
    server: HealthServer, telemetry: Telemetry
) -> None:
    telemetry.tick_done(
        "shop",
        "accounts",
        phase="Progressing",
        weight=20,
        failed_checks=0,
        checks=[("success-rate", "passed")],
        seconds=0.01,
    )
    status, content_type, text = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["canary_weight"].samples[0].value == 20
    assert "canary_checks" in families
    # Only our registry: nothing from the process-wide default (python_info, process_*).
    assert "python_info" not in families


def test_metrics_speak_openmetrics_when_asked(server: HealthServer) -> None:
    status, content_type, text = get(server, "/metrics", accept="application/openmetrics-text")
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")


def test_an_unknown_path_is_404(server: HealthServer) -> None:
    assert get(server, "/")[0] == 404


def test_stop_closes_the_port_quickly(state: State, telemetry: Telemetry) -> None:
    running = HealthServer(registry=telemetry.registry, alive=state.is_alive)
    running.start()
    port = running.port
    assert get(running, "/healthz")[0] == 200
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    running.stop()  # twice is harmless


def test_stop_without_start_releases_the_port(state: State, telemetry: Telemetry) -> None:
    idle = HealthServer(registry=telemetry.registry, alive=state.is_alive)
    started = time.monotonic()
    idle.stop()
    assert time.monotonic() - started < 0.5


def test_a_silent_client_does_not_block_probes(server: HealthServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=1):
        assert get(server, "/healthz")[0] == 200


def test_binds_ipv6_loopback(state: State, telemetry: Telemetry) -> None:
    with HealthServer(registry=telemetry.registry, alive=state.is_alive, host="::1") as running:
        url = f"http://[::1]:{running.port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.status == 200


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":8080", ("", 8080)),
        ("[::]:9090", ("::", 9090)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_address(address: str, parsed: tuple[str, int]) -> None:
    assert parse_address(address) == parsed


@pytest.mark.parametrize("address", ["8080", "host:", "host:http", ":::8080", "h:70000"])
def test_parse_address_refuses_what_it_cannot_bind(address: str) -> None:
    with pytest.raises(ValueError, match=r"8080|port|host:port"):
        parse_address(address)
