"""`canary promote|abort|retry`: refuse without writing when there is nothing to do; otherwise
write the request, wait for the controller's answer, print it, remove the request."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from canary.api.commands import COMMAND_ANNOTATION
from canary.api.people import ApprovalRecord
from canary.api.status import Phase
from canary.localmesh.store import LocalStore
from tests.unit.cli.conftest import (
    KEY,
    NAME,
    NS,
    FakeController,
    body,
    cli,
    current_revision,
    later,
    set_status,
)


def version(store: LocalStore) -> str:
    return str(body(store)["metadata"]["resourceVersion"])


def annotations(store: LocalStore) -> dict[str, str]:
    return dict(body(store)["metadata"].get("annotations") or {})


def test_abort_rolls_back_and_removes_its_request(
    store: LocalStore, controller: FakeController
) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=25, step=1)
    result = cli(store, "abort", NAME, "-n", NS, env={"GITHUB_ACTOR": "octocat"})
    assert result.exit_code == 0, result.output
    assert "abort shop/accounts: rolling back v2: aborted by octocat" in result.stdout
    (command,) = controller.handled
    assert (command.verb, command.by, command.force) == ("abort", "octocat", False)
    written = json.loads(controller.annotations_seen[0][COMMAND_ANNOTATION])
    assert written == {
        "verb": "abort", "id": command.id, "force": False, "by": "octocat", "via": "cli",
        "revision": "", "gate": "",
    }  # fmt: skip
    assert COMMAND_ANNOTATION not in annotations(store)
    stored = store.canary(KEY)
    assert stored is not None
    assert stored.status.phase is Phase.FAILED
    assert stored.status.last_command is not None
    assert stored.status.last_command.id == command.id


def test_abort_of_a_paused_canary_resumes_it_in_the_same_write(
    store: LocalStore, controller: FakeController
) -> None:
    paused = body(store)
    paused["spec"]["suspend"] = True
    store.put(paused)
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    result = cli(store, "abort", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    assert "shop/accounts was paused: resuming it so the rollback can move the weights" in (
        result.stdout
    )
    assert body(store)["spec"]["suspend"] is False
    assert len(controller.handled) == 1


def test_promote_waits_for_checks_and_force_skips_them(
    store: LocalStore, controller: FakeController
) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    asked = cli(store, "promote", NAME, "-n", NS)
    assert asked.exit_code == 0, asked.output
    assert "promote shop/accounts: promoting once this step's checks pass" in asked.stdout
    forced = cli(store, "promote", NAME, "-n", NS, "--force")
    assert forced.exit_code == 0, forced.output
    assert [command.force for command in controller.handled] == [False, True]
    assert "promoting now, checks skipped (--force)" in forced.stdout


def test_retry_of_a_failed_rollout_starts_it_over(
    store: LocalStore, controller: FakeController
) -> None:
    set_status(store, phase=Phase.FAILED, message="request-success-rate failed")
    result = cli(store, "retry", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    assert "retry shop/accounts: starting over from the first step" in result.stdout


def test_a_command_the_controller_does_not_accept_exits_1(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)

    def refuse(command: object, status: object) -> tuple[dict[str, object], bool, str]:
        return {}, False, "the step's checks have not passed yet"

    with FakeController(store, refuse):
        result = cli(store, "promote", NAME, "-n", NS)
    assert result.exit_code == 1
    assert "promote shop/accounts not accepted: the step's checks have not passed yet" in (
        result.stderr
    )
    assert COMMAND_ANNOTATION not in annotations(store)


@pytest.mark.parametrize(
    ("verb", "phase", "message"),
    [
        ("abort", Phase.SUCCEEDED, "nothing to do: the rollout of v2 already ended Succeeded"),
        ("abort", Phase.FAILED, "nothing to do: the rollout of v2 already ended Failed"),
        ("abort", Phase.ROLLING_BACK, "nothing to do: the rollout of v2 is already rolling back"),
        ("promote", Phase.SUCCEEDED, "nothing to do: the rollout of v2 already ended Succeeded"),
        (
            "promote",
            Phase.FAILED,
            "nothing to do: the rollout of v2 already ended Failed (canary retry accounts "
            "starts it over)",
        ),
        ("promote", Phase.PROMOTING, "nothing to do: v2 is already being promoted"),
        (
            "retry",
            Phase.PROGRESSING,
            "nothing to do: the rollout of v2 is Progressing, not Failed; retry starts a failed "
            "rollout over",
        ),
        (
            "retry",
            Phase.SUCCEEDED,
            "nothing to do: the rollout of v2 is Succeeded, not Failed; retry starts a failed "
            "rollout over",
        ),
    ],
)
def test_nothing_to_do_exits_0_without_writing(
    store: LocalStore, verb: str, phase: Phase, message: str
) -> None:
    set_status(store, phase=phase, canary_weight=100 if phase is Phase.SUCCEEDED else 10)
    before = version(store)
    result = cli(store, verb, NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == message
    assert version(store) == before


def test_promote_while_rolling_back_is_refused(store: LocalStore) -> None:
    set_status(store, phase=Phase.ROLLING_BACK, message="request-success-rate failed 2 times")
    before = version(store)
    result = cli(store, "promote", NAME, "-n", NS)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "cannot promote: the rollout of v2 is rolling back (request-success-rate failed 2 times)"
        "; once it has Failed, canary retry accounts starts it over"
    )
    assert version(store) == before


def test_an_ended_earlier_release_is_not_nothing_to_do(
    store: LocalStore, controller: FakeController
) -> None:
    """A newer spec the controller has not started yet: the request goes to the controller,
    which answers for the release it is about to start."""
    set_status(store, phase=Phase.SUCCEEDED, revision="0ld0ld0ld0ld")
    result = cli(store, "abort", NAME, "-n", NS)
    assert result.exit_code == 1
    assert "abort shop/accounts not accepted: nothing to do in Succeeded" in result.stderr
    assert len(controller.handled) == 1


@pytest.mark.parametrize("verb", ["promote", "abort", "retry"])
def test_a_missing_canary_exits_1(store: LocalStore, verb: str) -> None:
    result = cli(store, verb, "nope", "-n", NS)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Canary shop/nope not found (state dir {store.root})"


def test_an_invalid_canary_exits_1_with_its_problems(store: LocalStore) -> None:
    set_status(store, phase=Phase.INVALID, message="VirtualService shop/accounts not found")
    result = cli(store, "abort", NAME, "-n", NS)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Canary shop/accounts is invalid: VirtualService shop/accounts not found"
    )
    broken = body(store)
    broken["spec"]["analysis"]["stepWeights"] = [50, 10]
    store.put(broken)
    unparsed = cli(store, "promote", NAME, "-n", NS)
    assert unparsed.exit_code == 1
    assert "Canary shop/accounts is invalid: spec.analysis" in unparsed.stderr


def test_no_controller_times_out_with_exit_2_and_removes_the_request(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    result = cli(store, "abort", NAME, "-n", NS, "--timeout", "1s")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "the controller did not pick the command up within 1s (is it running?)"
    )
    assert COMMAND_ANNOTATION not in annotations(store)


def test_a_canary_deleted_while_waiting_exits_2(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    deletes = later([(0.3, lambda: store.delete("Canary", NS, NAME))])
    result = cli(store, "abort", NAME, "-n", NS, "--timeout", "20s")
    deletes.join()
    assert result.exit_code == 2
    assert "Canary shop/accounts was deleted before the controller answered" in result.stderr


@pytest.mark.parametrize("verb", ["promote", "abort", "retry"])
def test_a_malformed_timeout_is_a_usage_error(store: LocalStore, verb: str) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    before = version(store)
    result = cli(store, verb, NAME, "-n", NS, "--timeout", "60")
    assert result.exit_code == 2
    assert "Invalid value for '--timeout': '60' is not a duration" in result.stderr
    assert version(store) == before


def test_a_request_someone_else_put_there_is_left_alone(store: LocalStore) -> None:
    """The command removes its own request only: another one written meanwhile stays."""
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    other = '{"verb":"promote","id":"someone-else","force":false,"by":"x"}'

    def overwrite() -> None:
        current = body(store)
        current["metadata"]["annotations"][COMMAND_ANNOTATION] = other
        store.put(current)

    writes = later([(0.3, overwrite)])
    result = cli(store, "abort", NAME, "-n", NS, "--timeout", "1s")
    writes.join()
    assert result.exit_code == 2
    assert annotations(store)[COMMAND_ANNOTATION] == other


@pytest.mark.parametrize("verb", ["promote", "retry"])
def test_promote_and_retry_of_a_paused_canary_say_resume_first(
    store: LocalStore, verb: str
) -> None:
    paused = body(store)
    paused["spec"]["suspend"] = True
    store.put(paused)
    set_status(store, phase=Phase.FAILED if verb == "retry" else Phase.PROGRESSING)
    before = version(store)
    result = cli(store, verb, NAME, "-n", NS)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"shop/accounts is paused (spec.suspend): resume it first (canary resume accounts), "
        f"then {verb}"
    )
    assert version(store) == before


def test_approve_and_reject_decide_the_gate_that_waits(
    store: LocalStore, controller: FakeController
) -> None:
    waiting = ApprovalRecord(
        gate="promotion", revision=current_revision(store), step=1, requested_at=datetime.now(UTC)
    )
    set_status(
        store,
        phase=Phase.PROGRESSING,
        canary_weight=50,
        waiting_for="approval for promotion",
        approvals=(waiting,),
    )
    result = cli(store, "approve", NAME, "-n", NS, env={"GITHUB_ACTOR": "octocat"})
    assert result.exit_code == 0, result.output
    assert "approve shop/accounts: approval for promotion: approved by octocat via cli" in (
        result.stdout
    )
    (command,) = controller.handled
    assert (command.verb, command.via) == ("approve", "cli")
    assert COMMAND_ANNOTATION not in annotations(store)
    # Decided: nothing waits any more, so a second decision is refused without a write.
    before = version(store)
    again = cli(store, "reject", NAME, "-n", NS)
    assert again.exit_code == 1
    assert "nothing to reject: no approval waits" in again.output
    assert version(store) == before
    assert len(controller.handled) == 1
