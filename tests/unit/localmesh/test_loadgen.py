"""The load generator keeps its rate, stops at its bounds, and counts what users got."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from canary.localmesh import app, loadgen, procs


def _serve(behaviour: app.Behaviour) -> Iterator[str]:
    server = app.DemoServer(procs.free_port(), behaviour, seed=3)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def healthy() -> Iterator[str]:
    yield from _serve(app.Behaviour(version="v1"))


@pytest.fixture
def slow() -> Iterator[str]:
    yield from _serve(app.Behaviour(version="v1", latency_ms=200))


def test_sends_rate_times_duration_requests_at_the_rate(healthy: str) -> None:
    load = loadgen.LoadGenerator(healthy, rate_per_second=40, duration_s=2.0, concurrency=2)
    started = time.monotonic()
    load.start().wait(timeout=10)
    took = time.monotonic() - started
    snapshot = load.snapshot()
    assert snapshot.sent == 80
    assert 1.8 <= took <= 3.0
    assert snapshot.totals == {loadgen.Outcome("v1", 200): 80}
    # Open-loop pacing: each second holds its share of the requests.
    assert sorted(sum(c.values()) for c in snapshot.per_second.values()) == [40, 40]


def test_stop_ends_the_run_early(healthy: str) -> None:
    load = loadgen.LoadGenerator(healthy, rate_per_second=50, duration_s=30, concurrency=2)
    load.start()
    time.sleep(0.5)
    started = time.monotonic()
    load.stop()
    assert time.monotonic() - started < 1.0
    assert not load.running
    assert 10 <= load.snapshot().sent <= 40


def test_counts_outcomes_by_version_and_status() -> None:
    for url in _serve(app.Behaviour(version="v2", error_rate=0.5)):
        load = loadgen.LoadGenerator(url, rate_per_second=100, duration_s=2.0)
        load.start().wait(timeout=10)
        by_version = load.snapshot().by_version()
        assert set(by_version) == {"v2"}
        assert set(by_version["v2"]) == {200, 503}
        assert sum(by_version["v2"].values()) == 200


def test_a_slow_backend_costs_missed_slots_not_a_burst(slow: str) -> None:
    # One worker at 200 ms a request manages 5/s of the 20/s asked; what falls over a second
    # behind is skipped, so the count is bounded and the run ends on time.
    load = loadgen.LoadGenerator(slow, rate_per_second=20, duration_s=2.0, concurrency=1)
    started = time.monotonic()
    load.start().wait(timeout=10)
    snapshot = load.snapshot()
    assert time.monotonic() - started < 3.5
    assert snapshot.missed > 0
    assert snapshot.sent + snapshot.missed <= 40
    assert snapshot.sent <= 15


def test_nobody_listening_is_counted_as_no_response() -> None:
    url = f"http://127.0.0.1:{procs.free_port()}/"
    load = loadgen.LoadGenerator(url, rate_per_second=20, duration_s=0.5)
    load.start().wait(timeout=10)
    assert load.snapshot().totals == {
        loadgen.Outcome(loadgen.UNKNOWN_VERSION, loadgen.NO_RESPONSE): 10
    }


def test_a_mix_sends_each_request_its_exact_share(healthy: str) -> None:
    # A POST the app does not serve answers 404: the share of 404s is the share of that request.
    mix = [
        (loadgen.Request("GET", "/browse"), 3),
        (loadgen.Request("POST", "/nowhere", b'{"a": 1}'), 1),
    ]
    load = loadgen.LoadGenerator(healthy, rate_per_second=40, duration_s=2.0, mix=mix)
    load.start().wait(timeout=10)
    assert load.snapshot().by_version() == {"v1": {200: 60, 404: 20}}


def test_a_schedule_spreads_each_weight_evenly() -> None:
    browse, checkout = loadgen.Request("GET", "/browse"), loadgen.Request("POST", "/checkout")
    round_ = loadgen.schedule([(browse, 4), (checkout, 1)])
    assert round_ == (browse, browse, checkout, browse, browse)
    spread = loadgen.schedule([(browse, 17), (checkout, 3)])
    positions = [index for index, request in enumerate(spread) if request is checkout]
    assert len(positions) == 3
    # No two checkouts closer than the 20/3 slots an even spread gives, give or take one.
    assert all(b - a >= 5 for a, b in itertools.pairwise(positions))


@pytest.mark.parametrize("mix", [[], [(loadgen.Request("GET", "/"), 0)]])
def test_an_empty_or_weightless_mix_is_refused(mix: list[tuple[loadgen.Request, int]]) -> None:
    with pytest.raises(ValueError, match="positive weight"):
        loadgen.schedule(mix)
