"""`canary wait`: follows this release to its end; an earlier release's verdict is never it."""

from __future__ import annotations

import time

from canary.api.status import Phase
from canary.localmesh.store import LocalStore
from tests.unit.cli.conftest import NAME, NS, body, canary_body, cli, deployment, later, set_status


def test_progress_lines_then_succeeded_exits_0(store: LocalStore) -> None:
    set_status(store, phase=Phase.INITIALIZING, message="waiting for accounts-v2 to be ready")
    steps = later(
        [
            (0.2, lambda: set_status(store, phase=Phase.PROGRESSING, canary_weight=10)),
            (0.4, lambda: set_status(store, phase=Phase.PROGRESSING, canary_weight=25, step=1)),
            (0.6, lambda: set_status(store, phase=Phase.SUCCEEDED, message="v2 is stable")),
        ]
    )
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "10s")
    steps.join()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "Initializing, weight 0%, step 0/3, waiting for accounts-v2 to be ready" in lines[0]
    assert any("Progressing, weight 10%, step 1/3" in line for line in lines)
    assert any("Progressing, weight 25%, step 2/3" in line for line in lines)
    assert "Succeeded: v2 is stable (revision" in lines[-1]


def test_failed_exits_1_and_invalid_exits_1(store: LocalStore) -> None:
    set_status(store, phase=Phase.FAILED, message="request-success-rate failed 2 times")
    failed = cli(store, "wait", NAME, "-n", NS)
    assert failed.exit_code == 1
    assert "Failed: request-success-rate failed 2 times" in failed.stdout
    set_status(store, phase=Phase.INVALID, message="VirtualService shop/accounts not found")
    invalid = cli(store, "wait", NAME, "-n", NS)
    assert invalid.exit_code == 1
    assert "Invalid: VirtualService shop/accounts not found" in invalid.stdout


def test_an_earlier_release_that_ended_is_not_the_verdict(store: LocalStore) -> None:
    set_status(store, phase=Phase.SUCCEEDED, revision="0ld0ld0ld0ld", message="v2 is stable")
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "1s")
    assert result.exit_code == 2, result.output
    assert "waiting for the controller to start revision" in result.stdout
    assert "the status is about revision 0ld0ld0ld0ld (Succeeded)" in result.stdout
    assert "timed out after 1s waiting for shop/accounts" in result.stderr


def test_an_earlier_failure_is_not_the_verdict_either_and_the_new_one_is(
    store: LocalStore,
) -> None:
    set_status(store, phase=Phase.FAILED, revision="0ld0ld0ld0ld", message="old one failed")
    moves = later(
        [
            (0.3, lambda: set_status(store, phase=Phase.PROGRESSING, canary_weight=10)),
            (0.6, lambda: set_status(store, phase=Phase.SUCCEEDED, message="v2 is stable")),
        ]
    )
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "10s")
    moves.join()
    assert result.exit_code == 0, result.output
    assert "old one failed" not in result.stdout


def test_a_spec_change_during_the_wait_moves_to_the_newer_revision(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)

    def new_spec() -> None:
        changed = canary_body()
        changed["spec"]["analysis"]["stepWeights"] = [20, 40]
        store.put(changed)
        # The controller, late, still ends the earlier revision: that is not this release.
        set_status(store, phase=Phase.SUCCEEDED, revision="0ld0ld0ld0ld")

    changes = later([(0.3, new_spec)])
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "1500ms")
    changes.join()
    assert result.exit_code == 2, result.output
    assert "the spec or the target's pod template changed: now waiting for" in result.stdout


def test_a_new_pod_template_in_the_target_is_a_newer_revision(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    changes = later([(0.3, lambda: store.put(deployment("accounts-v2", "accounts:v2.1")))])
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "1s")
    changes.join()
    assert result.exit_code == 2
    assert "now waiting for" in result.stdout


def test_a_deleted_canary_exits_2(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    deletes = later([(0.3, lambda: store.delete("Canary", NS, NAME))])
    began = time.monotonic()
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "30s")
    deletes.join()
    assert result.exit_code == 2
    assert f"Canary {NS}/{NAME} was deleted" in result.stderr
    assert time.monotonic() - began < 10


def test_a_canary_that_never_existed_exits_2(store: LocalStore) -> None:
    result = cli(store, "wait", "nope", "-n", NS)
    assert result.exit_code == 2
    assert f"Canary {NS}/nope not found" in result.stderr


def test_a_malformed_timeout_is_a_usage_error(store: LocalStore) -> None:
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "soon")
    assert result.exit_code == 2
    assert "Invalid value for '--timeout'" in result.stderr
    assert "'soon' is not a duration" in result.stderr


def test_a_spec_that_does_not_parse_exits_1(store: LocalStore) -> None:
    broken = body(store)
    broken["spec"]["analysis"]["stepWeights"] = [50, 10]
    store.put(broken)
    result = cli(store, "wait", NAME, "-n", NS)
    assert result.exit_code == 1
    assert "is invalid: spec.analysis" in result.stderr
