"""`canary release NAME --to SUBSET`: the next release in one merge patch, or why not."""

from __future__ import annotations

import pytest

from canary.api.status import Phase
from canary.localmesh.store import LocalStore
from tests.unit.cli.conftest import NAME, NS, body, cli, current_revision, set_status

OLD_CANARY = {
    "subset": "v2",
    "labels": {"app": "accounts", "version": "v2"},
    "targetRef": {"name": "accounts-v2"},
}


def version(store: LocalStore) -> str:
    return str(body(store)["metadata"]["resourceVersion"])


def test_after_a_success_the_old_canary_becomes_the_stable(store: LocalStore) -> None:
    set_status(store, phase=Phase.SUCCEEDED, canary_weight=100, stable_subset="v2")
    result = cli(store, "release", NAME, "-n", NS, "--to", "v3", "--target", "accounts-v3")
    assert result.exit_code == 0, result.output
    spec = body(store)["spec"]
    assert spec["stable"] == OLD_CANARY
    assert spec["canary"] == {
        "subset": "v3",
        "labels": {"app": "accounts", "version": "v3"},
        "targetRef": {"kind": "Deployment", "name": "accounts-v3"},
    }
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "released v3 on shop/accounts: canary v3 (Deployment accounts-v3, labels "
        "app=accounts,version=v3), stable v2"
    )
    assert lines[1] == "  spec.stable is now v2: the last rollout promoted it"
    assert lines[2] == (
        f"  revision {current_revision(store)}: the controller starts it at its next tick"
    )
    assert lines[3] == f"  next: canary wait accounts -n shop --state-dir {store.root}"


def test_after_a_failure_the_stable_stays(store: LocalStore) -> None:
    set_status(store, phase=Phase.FAILED)
    stable = body(store)["spec"]["stable"]
    result = cli(
        store, "release", NAME, "-n", NS, "--to", "v3", "--target", "accounts-v3",
        "--labels", "version=v3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    spec = body(store)["spec"]
    assert spec["stable"] == stable
    # The label the new version does not have is gone, not merged in from the old one.
    assert spec["canary"]["labels"] == {"version": "v3"}


def test_mid_rollout_it_is_refused_and_nothing_is_written(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=25, step=1)
    before = version(store)
    result = cli(store, "release", NAME, "-n", NS, "--to", "v3", "--target", "accounts-v3")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "a rollout of v2 is in progress (Progressing, weight 25); wait for it (canary wait "
        "accounts) or abort it (canary abort accounts) first"
    )
    assert version(store) == before


def test_the_same_canary_again_is_nothing_to_do(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=25)
    before = version(store)
    result = cli(store, "release", NAME, "-n", NS, "--to", "v2", "--target", "accounts-v2")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "nothing to do: v2 is already the canary of shop/accounts"
    assert version(store) == before


@pytest.mark.parametrize(
    ("phase", "subset", "target"),
    [
        (Phase.FAILED, "v1", "accounts-v1"),
        # v2 was promoted: a new build under its subset would be stable and canary at once.
        (Phase.SUCCEEDED, "v2", "accounts-v3"),
        (None, "v1", "accounts-v1"),
    ],
)
def test_the_stable_subset_is_refused(
    store: LocalStore, phase: Phase | None, subset: str, target: str
) -> None:
    set_status(store, phase=phase, stable_subset="v2" if phase is Phase.SUCCEEDED else "v1")
    before = version(store)
    result = cli(store, "release", NAME, "-n", NS, "--to", subset, "--target", target)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"--to {subset} is the stable subset of shop/accounts (it serves now); a release moves "
        "traffic to another subset: give the new version a subset of its own"
    )
    assert version(store) == before


def test_a_target_is_required_when_the_canary_had_one(store: LocalStore) -> None:
    set_status(store, phase=Phase.SUCCEEDED, stable_subset="v2")
    result = cli(store, "release", NAME, "-n", NS, "--to", "v3")
    assert result.exit_code == 2
    assert "give --target: the Deployment that runs v3" in result.stderr


def test_a_missing_deployment_is_refused(store: LocalStore) -> None:
    set_status(store, phase=Phase.SUCCEEDED, stable_subset="v2")
    before = version(store)
    result = cli(store, "release", NAME, "-n", NS, "--to", "v3", "--target", "accounts-v9")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Deployment shop/accounts-v9 not found: create it before releasing v3 (the rollout "
        "waits for it to be ready)"
    )
    assert version(store) == before


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("version", "'version' is not a label"),
        ("version=v3,=x", "'=x' is not a label"),
        ("version=v 3", "'version=v 3' is not a label"),
        ("version=v3,version=v4", "label 'version' is given twice"),
    ],
)
def test_malformed_labels_are_a_usage_error(store: LocalStore, labels: str, message: str) -> None:
    result = cli(
        store, "release", NAME, "-n", NS, "--to", "v3", "--target", "accounts-v3",
        "--labels", labels,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "Invalid value for '--labels'" in result.stderr
    assert message in result.stderr


def test_a_subset_that_is_not_a_name_is_a_usage_error(store: LocalStore) -> None:
    result = cli(store, "release", NAME, "-n", NS, "--to", "V3!", "--target", "accounts-v3")
    assert result.exit_code == 2
    assert "'V3!' is not a subset name" in result.stderr


def test_a_release_that_would_make_the_spec_invalid_is_refused(store: LocalStore) -> None:
    current = body(store)
    current["spec"]["chaos"] = [
        {
            "name": "eject",
            "subset": "v2",
            "atWeight": 25,
            "duration": "10s",
            "fault": {"abort": {"httpStatus": 503, "percentage": 50}},
        }
    ]
    store.put(current)
    set_status(store, phase=Phase.SUCCEEDED, stable_subset="v2")
    before = version(store)
    result = cli(store, "release", NAME, "-n", NS, "--to", "v3", "--target", "accounts-v3")
    assert result.exit_code == 1
    assert "releasing v3 would make shop/accounts invalid: " in result.stderr
    assert "an experiment only targets the canary subset" in result.stderr
    assert version(store) == before


def test_a_missing_canary_exits_1(store: LocalStore) -> None:
    result = cli(store, "release", "nope", "-n", NS, "--to", "v3", "--target", "accounts-v3")
    assert result.exit_code == 1
    assert "Canary shop/nope not found" in result.stderr


def test_a_release_the_controller_never_started_is_replaced_and_the_stable_stays(
    store: LocalStore,
) -> None:
    set_status(store, phase=Phase.SUCCEEDED, canary_weight=100, stable_subset="v2")
    first = cli(store, "release", NAME, "-n", NS, "--to", "v3", "--target", "accounts-v3")
    assert first.exit_code == 0, first.output
    # The controller has not ticked: the status still says v2 Succeeded.
    second = cli(store, "release", NAME, "-n", NS, "--to", "v4", "--target", "accounts-v3")
    assert second.exit_code == 0, second.output
    assert "it replaces the release of v3, which the controller had not started" in second.stdout
    spec = body(store)["spec"]
    assert spec["stable"]["subset"] == "v2", "v3 never served: it must not become the stable"
    assert spec["canary"]["subset"] == "v4"
