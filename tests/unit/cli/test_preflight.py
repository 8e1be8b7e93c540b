"""`canary preflight NAME` against a demo's state directory: the controller's record, one line
per item, and an exit code a pipeline can gate on."""

from __future__ import annotations

from datetime import UTC, datetime

from canary.api.status import Condition, Phase
from canary.engine import preflight
from canary.engine.preflight import ItemState, PreflightItem
from canary.localmesh.store import LocalStore
from tests.unit.cli.conftest import NAME, NS, cli, set_status

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OK = PreflightItem("sidecars", ItemState.OK, "ready pods with the sidecar: v1 2/2, v2 1/1")
SKIPPED = PreflightItem("callers' proxies", ItemState.SKIPPED, "not checked: no proxy visible")
FAILED = PreflightItem(
    "metric series", ItemState.FAILED, 'request-success-rate: no series x{a="b"}', "scrape it"
)


def recorded(store: LocalStore, *items: PreflightItem) -> None:
    condition = Condition(
        type=preflight.PREFLIGHT,
        status="True" if preflight.passed(items) else "False",
        reason="PreflightPassed" if preflight.passed(items) else "PreflightFailed",
        message=preflight.message(items),
        last_transition_time=AT,
    )
    set_status(store, phase=Phase.INITIALIZING, revision="r1", conditions=[condition])


def test_a_failing_item_prints_each_line_and_exits_1(store: LocalStore) -> None:
    recorded(store, OK, SKIPPED, FAILED)
    result = cli(store, "preflight", NAME, "-n", NS)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        f"Canary {NS}/{NAME}: revision r1, Initializing: preflight failed (since 2026-01-01 "
        "12:00:00 UTC)",
        "✓ sidecars: ready pods with the sidecar: v1 2/2, v2 1/1",
        "- callers' proxies: not checked: no proxy visible",
        '✗ metric series: request-success-rate: no series x{a="b"}; fix: scrape it',
    ]


def test_every_item_passing_exits_0(store: LocalStore) -> None:
    recorded(store, OK, SKIPPED)
    result = cli(store, "preflight", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    assert "preflight passed" in result.output.splitlines()[0]


def test_not_checked_yet_is_no_pass(store: LocalStore) -> None:
    set_status(store, phase=Phase.INITIALIZING, revision="r1")
    result = cli(store, "preflight", NAME, "-n", NS)
    assert result.exit_code == 1
    assert result.output.splitlines()[1].startswith("? preflight: not checked yet")


def test_a_missing_canary_is_one_line_and_exit_1(store: LocalStore) -> None:
    result = cli(store, "preflight", "nope", "-n", NS)
    assert result.exit_code == 1
    assert "Canary shop/nope not found" in result.output
    assert "Traceback" not in result.output
