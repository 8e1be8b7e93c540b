"""`canary wait`: follows this release to its end; an earlier release's verdict is never it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from canary.api.status import Condition, Phase
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


def _timeless(output: str) -> list[str]:
    """The lines without their HH:MM:SS stamp."""
    return [line.split(" ", 1)[1] for line in output.splitlines()]


def test_a_progress_line_says_the_step_once(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10, message="step 1/3: weight 10")
    steps = later(
        [
            (0.2, lambda: set_status(store, phase=Phase.PROGRESSING, canary_weight=10,
                                     message="step 1/3: weight 10 is live")),
            (0.4, lambda: set_status(store, phase=Phase.PROGRESSING, canary_weight=25, step=1,
                                     message="step 2: waiting for every check to pass")),
            # A message about another step than the one shown is left whole.
            (0.6, lambda: set_status(store, phase=Phase.PROGRESSING, canary_weight=50, step=2,
                                     message="step 2/3: weight 25 is live")),
            (0.8, lambda: set_status(store, phase=Phase.SUCCEEDED, message="v2 is stable")),
        ]
    )  # fmt: skip
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "10s")
    steps.join()
    assert result.exit_code == 0, result.output
    lines = _timeless(result.stdout)
    assert lines[:4] == [
        "Progressing, weight 10%, step 1/3: weight 10",
        "Progressing, weight 10%, step 1/3: weight 10 is live",
        "Progressing, weight 25%, step 2/3: waiting for every check to pass",
        "Progressing, weight 50%, step 3/3, step 2/3: weight 25 is live",
    ]
    assert not any("step 1/3, step 1/3" in line for line in lines)


def test_a_gate_holding_the_rollout_is_said_when_it_starts_and_stops(
    store: LocalStore,
) -> None:
    gate = "confirm-promotion webhook approve"
    waiting = Condition(
        type="Waiting", status="True", reason="GateClosed",
        message=f"waiting for {gate} to say yes", last_transition_time=datetime.now(UTC),
    )  # fmt: skip
    set_status(store, phase=Phase.PROGRESSING, canary_weight=50, step=2)
    moves = later(
        [
            (0.2, lambda: set_status(store, phase=Phase.PROGRESSING, canary_weight=50, step=2,
                                     waiting_for=gate, message=f"waiting for {gate} to say yes",
                                     conditions=(waiting,))),
            (0.5, lambda: set_status(store, phase=Phase.PROMOTING, canary_weight=100, step=2,
                                     message="all 3 steps passed: sending 100% to v2")),
            (0.7, lambda: set_status(store, phase=Phase.SUCCEEDED, canary_weight=100, step=2,
                                     message="v2 receives 100% and is now the stable subset")),
        ]
    )  # fmt: skip
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "10s")
    moves.join()
    assert result.exit_code == 0, result.output
    lines = _timeless(result.stdout)
    assert lines[1:5] == [
        f"{gate} holds the rollout: waiting for it to say yes",
        f"Progressing, weight 50%, step 3/3, waiting for {gate}",
        f"{gate} no longer holds the rollout",
        "Promoting, weight 100%, step 3/3, all 3 steps passed: sending 100% to v2",
    ]
    assert lines[-1].startswith("Succeeded: v2 receives 100% and is now the stable subset")


def test_a_rollout_that_ends_while_held_still_ends_on_its_verdict(store: LocalStore) -> None:
    gate = "confirm-traffic-increase webhook approve"
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10, waiting_for=gate)
    aborted = later([(0.3, lambda: set_status(store, phase=Phase.FAILED, message="aborted"))])
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "10s")
    aborted.join()
    assert result.exit_code == 1, result.output
    lines = _timeless(result.stdout)
    assert lines[0] == f"{gate} holds the rollout: waiting for it to say yes"
    assert lines[-2] == f"{gate} no longer holds the rollout"
    assert lines[-1].startswith("Failed: aborted (revision ")


def test_a_generation_the_controller_has_not_seen_is_said(store: LocalStore) -> None:
    set_status(store, phase=Phase.SUCCEEDED, canary_weight=100, observed_generation=1)
    changed = canary_body()
    changed["spec"]["analysis"]["stepWeights"] = [20, 40]
    store.put(changed)
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "300ms")
    assert result.exit_code == 2, result.output
    assert "the controller has not seen generation 2 yet (it acted on 1)" in result.stdout
    assert "the status is about revision " in result.stdout


def test_a_pause_the_controller_has_not_seen_is_said(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10, observed_generation=1)
    store.put(canary_body(suspend=True))
    result = cli(store, "wait", NAME, "-n", NS, "--timeout", "300ms")
    assert result.exit_code == 2, result.output
    assert (
        "Progressing (paused), weight 10%, step 1/3, the controller has not seen generation 2 "
        "yet (it acted on 1)"
    ) in result.stdout
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10, observed_generation=2)
    seen = cli(store, "wait", NAME, "-n", NS, "--timeout", "300ms")
    assert "has not seen" not in seen.stdout
