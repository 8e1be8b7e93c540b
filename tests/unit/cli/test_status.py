"""`canary status`: every Canary of a namespace, or one, as text, JSON or YAML."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import yaml
from click.testing import CliRunner

from canary.api.commands import CommandResult, Verb
from canary.api.status import CheckResult, Condition, MeasurementKind, Phase, Verdict
from canary.cli import main
from canary.localmesh.store import LocalStore
from tests.unit.cli.conftest import NAME, NS, canary_body, cli, set_status

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CHECK = CheckResult(
    name="request-success-rate",
    kind=MeasurementKind.VALUE,
    value=99.5,
    samples=1200,
    query="sum(rate(x[1m]))",
    threshold=">= 99",
    verdict=Verdict.PASS,
    passed=True,
    counted=True,
    revision="r",
    step=1,
    weight=25,
    at=AT,
)


def test_one_canary_as_text_says_phase_weight_step_waiting_checks_and_last_command(
    store: LocalStore,
) -> None:
    set_status(
        store,
        phase=Phase.PROGRESSING,
        canary_weight=25,
        step=1,
        waiting_for="confirm-traffic-increase webhook gate",
        checks=(CHECK,),
        last_command=CommandResult(
            id="abc", verb=Verb.PROMOTE, accepted=False, message="checks not passed", at=AT
        ),
    )
    result = cli(store, "status", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"Canary {NS}/{NAME}: Progressing" in text
    assert "traffic:      weight 25% to v2, stable v1" in text
    assert "step:         2/3" in text
    assert "waiting for:  confirm-traffic-increase webhook gate" in text
    assert "request-success-rate: pass 99.5 (wanted >= 99) from 1200 requests" in text
    assert "promote not accepted at 2026-01-01 12:00:00: checks not passed" in text


def test_the_namespace_as_a_table(store: LocalStore) -> None:
    store.put({**canary_body(), "metadata": {"name": "billing", "namespace": NS}})
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10, checks=(CHECK,))
    result = cli(store, "status", "-n", NS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "PHASE", "WEIGHT", "STEP", "CHECKS"]
    assert lines[1].split()[:4] == ["accounts", "Progressing", "10%", "1/3"]
    assert "1 pass" in lines[1]
    assert lines[2].split()[:4] == ["billing", "NotStarted", "0%", "0/3"]
    everywhere = cli(store, "status", "-A")
    assert everywhere.stdout.splitlines()[0].startswith("NAMESPACE")
    empty = cli(store, "status", "-n", "elsewhere")
    assert empty.exit_code == 0
    assert "no Canaries in namespace elsewhere" in empty.stdout


def test_json_and_yaml_are_the_stored_status_with_name_namespace_generation(
    store: LocalStore,
) -> None:
    set_status(store, phase=Phase.SUCCEEDED, canary_weight=100)
    result = cli(store, "status", NAME, "-n", NS, "-o", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["name"] == NAME
    assert document["namespace"] == NS
    assert document["generation"] == 1
    assert document["phase"] == "Succeeded"
    assert document["canaryWeight"] == 100
    assert document["canarySubset"] == "v2"
    listed = yaml.safe_load(cli(store, "status", "-n", NS, "-o", "yaml").stdout)
    assert [item["name"] for item in listed] == [NAME]
    assert listed[0]["phase"] == "Succeeded"


def test_the_state_dir_comes_from_the_environment_too(store: LocalStore) -> None:
    result = CliRunner().invoke(
        main, ["status", NAME, "-n", NS], env={"CANARY_STATE_DIR": str(store.root)}
    )
    assert result.exit_code == 0, result.output
    assert f"Canary {NS}/{NAME}: NotStarted" in result.stdout


def test_a_missing_canary_exits_1(store: LocalStore) -> None:
    result = cli(store, "status", "nope", "-n", NS)
    assert result.exit_code == 1
    assert f"Canary {NS}/nope not found (state dir {store.root})" in result.stderr


def test_a_name_and_all_namespaces_is_a_usage_error(store: LocalStore) -> None:
    result = cli(store, "status", NAME, "-A")
    assert result.exit_code == 2
    assert "give NAME or --all-namespaces, not both" in result.stderr


def test_a_release_the_controller_has_not_started_is_shown_pending(store: LocalStore) -> None:
    set_status(store, phase=Phase.SUCCEEDED, revision="0ld0ld0ld0ld", canary_weight=100)
    result = cli(store, "status", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    assert "revision:     0ld0ld0ld0ld" in result.stdout
    assert "pending:      revision " in result.stdout
    assert "of v2: the controller starts it at its next tick" in result.stdout


def test_the_gate_holding_the_rollout_with_since_when_and_its_message_once(
    store: LocalStore,
) -> None:
    gate = "confirm-promotion webhook approve"
    set_status(
        store,
        phase=Phase.PROGRESSING,
        canary_weight=50,
        step=2,
        waiting_for=gate,
        message=f"waiting for {gate} to say yes",
        conditions=(
            Condition(type="Waiting", status="True", reason="GateClosed",
                      message=f"waiting for {gate} to say yes", last_transition_time=AT),
        ),
        promote_requested="checks",
    )  # fmt: skip
    text = cli(store, "status", NAME, "-n", NS).stdout
    assert f"  waiting for:  {gate} (since 2026-01-01 12:00:00) to say yes\n" in text
    assert "  message:" not in text, "the message only repeats the gate"
    assert "  promotion:    asked, once this step's checks pass\n" in text
    table = cli(store, "status", "-n", NS).stdout.splitlines()
    assert table[1].endswith(f"waiting for {gate}")


def test_the_template_revision_and_the_retired_deployment(store: LocalStore) -> None:
    set_status(
        store,
        phase=Phase.SUCCEEDED,
        canary_weight=100,
        stable_subset="v2",
        target_revision="7e3a91c0d2",
        stable_target="accounts-v2",
        retired_target="accounts-v1",
    )
    text = cli(store, "status", NAME, "-n", NS).stdout
    assert "  template:     pod template 7e3a91c0d2 of Deployment accounts-v2\n" in text
    assert "  retired:      Deployment accounts-v1, left as it is (no scaleDownAfter)\n" in text
    store.put(canary_body(scaleDownAfter="10m"))
    text = cli(store, "status", NAME, "-n", NS).stdout
    assert (
        "  retired:      Deployment accounts-v1, to be scaled to zero once the promotion has "
        "held 10m\n"
    ) in text
    set_status(
        store,
        phase=Phase.SUCCEEDED,
        canary_weight=100,
        stable_subset="v2",
        retired_target="accounts-v1",
        scaled_down_at=AT,
    )
    text = cli(store, "status", NAME, "-n", NS).stdout
    assert "  retired:      Deployment accounts-v1, scaled to zero at 2026-01-01 12:00:00\n" in text
    assert "  template:" not in text, "no target revision, no line"


def test_the_generation_the_controller_acted_on(store: LocalStore) -> None:
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10)
    unknown = cli(store, "status", NAME, "-n", NS).stdout
    assert "revision:     " in unknown
    assert "(generation 1)\n" in unknown, "a controller that does not say: nothing claimed"
    set_status(store, phase=Phase.PROGRESSING, canary_weight=10, observed_generation=1)
    assert "(generation 1, seen by the controller)\n" in cli(store, "status", NAME, "-n", NS).stdout
    store.put(canary_body(suspend=True))
    text = cli(store, "status", NAME, "-n", NS).stdout
    assert "(generation 2, not seen by the controller yet: it acted on 1)\n" in text
    assert "  paused:       yes" in text
