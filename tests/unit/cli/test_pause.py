"""`canary pause|resume`: spec.suspend by merge patch; idempotent."""

from __future__ import annotations

from canary.api.status import Phase
from canary.localmesh.store import LocalStore
from tests.unit.cli.conftest import NAME, NS, body, cli, current_revision, set_status


def test_pause_then_resume_and_each_twice(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=25)
    revision = current_revision(store)
    paused = cli(store, "pause", NAME, "-n", NS)
    assert paused.exit_code == 0, paused.output
    assert "paused shop/accounts: the controller freezes the rollout at its next tick" in (
        paused.stdout
    )
    assert body(store)["spec"]["suspend"] is True
    assert current_revision(store) == revision, "pausing is not a new release"
    version = body(store)["metadata"]["resourceVersion"]
    again = cli(store, "pause", NAME, "-n", NS)
    assert again.exit_code == 0
    assert again.stdout.strip() == "nothing to do: shop/accounts is already paused"
    assert body(store)["metadata"]["resourceVersion"] == version
    resumed = cli(store, "resume", NAME, "-n", NS)
    assert resumed.exit_code == 0
    assert "resumed shop/accounts" in resumed.stdout
    assert body(store)["spec"]["suspend"] is False
    twice = cli(store, "resume", NAME, "-n", NS)
    assert twice.stdout.strip() == "nothing to do: shop/accounts is already running"


def test_a_missing_canary_exits_1(store: LocalStore) -> None:
    for verb in ("pause", "resume"):
        result = cli(store, verb, "nope", "-n", NS)
        assert result.exit_code == 1
        assert f"Canary {NS}/nope not found" in result.stderr
