"""`canary explain`: the decision trail of the current release, from the status and Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from canary.api.chaos import Trial
from canary.api.commands import CommandResult, Verb
from canary.api.comparison import ComparisonVerdict
from canary.api.spec import CanarySpec
from canary.api.status import (
    ChaosPhase,
    ChaosResult,
    CheckResult,
    Condition,
    MeasurementKind,
    Phase,
    Verdict,
)
from canary.api.traces import SpanEvidence
from canary.engine import comparing, sequential
from canary.engine.actions import Notify
from canary.localmesh.store import LocalStore
from canary.ports import CanaryKey
from tests.unit.cli.conftest import KEY, NAME, NS, cli, current_revision, set_status

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
URL = "http://gate.shop/approve"


def record(revision: str, step: int, weight: int, seconds: int, **fields: object) -> CheckResult:
    values: dict[str, object] = {
        "name": "request-success-rate",
        "kind": MeasurementKind.VALUE,
        "value": 99.9,
        "samples": 800,
        "query": 'sum(rate(requests{version="v2",code!~"5.."}[1m]))',
        "threshold": ">= 99",
        "verdict": Verdict.PASS,
        "passed": True,
        "counted": True,
        "revision": revision,
        "step": step,
        "weight": weight,
        "at": AT + timedelta(seconds=seconds),
        **fields,
    }
    return CheckResult.model_validate(values)


def test_a_failed_rollout_explained(store: LocalStore) -> None:
    revision = current_revision(store)
    history = (
        record("0ld0ld0ld0ld", 0, 10, -600, value=12.0),
        record(revision, 0, 0, 0, name="load-test", threshold="passed", query=URL, value=None,
               kind=MeasurementKind.VALUE, samples=None),
        record(revision, 0, 10, 30),
        record(revision, 1, 25, 60, value=95.5, verdict=Verdict.FAIL, passed=False,
               message="below 99"),
        record(revision, 1, 25, 70, kind=MeasurementKind.NO_DATA, value=None, samples=None,
               verdict=Verdict.FAIL, passed=False, message="no series"),
    )  # fmt: skip
    trial = Trial.model_validate(
        {
            "name": "eject",
            "duration": "10s",
            "fault": {"abort": {"httpStatus": 503, "percentage": 50}},
        }
    )
    set_status(
        store,
        phase=Phase.FAILED,
        step=1,
        message="request-success-rate failed 2 times: rolled back to v1",
        history=history,
        chaos=(
            ChaosResult(
                name="eject", phase=ChaosPhase.PASSED, trial=trial, subset="v2",
                fault="abort 503 to 50%", expect="a canary host ejected", revision=revision,
                weight=10, started_at=AT + timedelta(seconds=20),
                expires_at=AT + timedelta(seconds=30), ended_at=AT + timedelta(seconds=30),
                requests=120, errors=60, ejections=1, success_rate=97.5,
                message="1 canary host ejected",
            ),
        ),
        conditions=(
            Condition(type="Promoted", status="False", reason="RolledBack",
                      message="rolled back to v1", last_transition_time=AT + timedelta(seconds=75)),
        ),
        last_command=CommandResult(id="1", verb=Verb.ABORT, accepted=True, message="rolling back",
                                   at=AT + timedelta(seconds=72)),
    )  # fmt: skip
    store.notify(KEY, Notify("RolloutStarted", "rolling out v2 in place of v1"))
    store.notify(KEY, Notify("CheckFailed", "request-success-rate: 95.5 < 99", warning=True))
    store.notify(CanaryKey(NS, "other"), Notify("Elsewhere", "not about this Canary"))
    result = cli(store, "explain", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"Canary shop/accounts: Failed, revision {revision} (generation 1)")
    assert "request-success-rate failed 2 times: rolled back to v1" in text
    assert f"Steps of v2 in place of v1, revision {revision}:" in text
    assert "  before the first step (weight 0%):" in text
    assert f"load-test: pass webhook {URL}" in text
    assert "  step 1/3, weight 10%:" in text
    assert "12:00:30  request-success-rate: pass 99.9 (wanted >= 99) from 800 requests" in text
    assert 'query: sum(rate(requests{version="v2",code!~"5.."}[1m]))' in text
    assert "  step 2/3, weight 25%:" in text
    assert "request-success-rate: fail 95.5 (wanted >= 99) from 800 requests: below 99" in text
    assert "request-success-rate: fail no_data (wanted >= 99): no series" in text
    assert "  step 3/3, weight 50%: not reached" in text
    assert "(1 measurement(s) of earlier revisions not shown)" in text
    assert "value 12" not in text
    assert " 12 (wanted" not in text
    assert "eject at 10% on v2: Passed" in text
    assert "observed requests 120, 5xx 60, ejections 1, callers' success rate 97.5%" in text
    assert "Promoted=False RolledBack (2026-01-01 12:01:15): rolled back to v1" in text
    assert "Last command: abort accepted at 2026-01-01 12:01:12: rolling back" in text
    events = text[text.index("Events:") :].splitlines()[1:]
    assert [line.split()[3] for line in events] == ["RolloutStarted:", "CheckFailed:"]
    assert "Elsewhere" not in text


def test_a_rollout_not_started_yet(store: LocalStore) -> None:
    result = cli(store, "explain", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    assert "Canary shop/accounts: NotStarted, revision -" in result.stdout
    assert "  step 1/3, weight 10%: not reached" in result.stdout
    assert "Events:\n  none" in result.stdout


def test_a_missing_canary_exits_1(store: LocalStore) -> None:
    result = cli(store, "explain", "nope", "-n", NS)
    assert result.exit_code == 1
    assert "Canary shop/nope not found" in result.stderr


def _promoted(store: LocalStore, **fields: object) -> None:
    set_status(
        store,
        phase=Phase.SUCCEEDED,
        canary_weight=100,
        step=2,
        stable_subset="v2",
        canary_subset="v2",
        message="v2 receives 100% and is now the stable subset",
        **fields,
    )


def test_a_promoted_rollout_names_the_subset_it_replaced(store: LocalStore) -> None:
    _promoted(store)
    # An earlier release, then this one's start and a restart: the latest start says.
    store.notify(KEY, Notify("RolloutStarted", "rolling out v1 in place of v0"))
    store.notify(KEY, Notify("RolloutStarted", "rolling out v2 in place of v0"))
    store.notify(
        KEY,
        Notify(
            "RolloutRestarted",
            "rolling out v2 in place of v1 (the spec changed: starting over from the first step)",
        ),
    )
    store.notify(KEY, Notify("Promoted", "v2 receives 100% and is now the stable subset"))
    text = cli(store, "explain", NAME, "-n", NS).stdout
    assert f"Steps of v2 in place of v1, revision {current_revision(store)}:" in text
    assert "in place of v2" not in text.split("Events:")[0]


def test_a_promoted_rollout_without_its_start_event_says_promoted(store: LocalStore) -> None:
    _promoted(store)
    # Events expire (an hour in a cluster); one about another canary subset is not this one's.
    store.notify(KEY, Notify("RolloutStarted", "rolling out v3 in place of v2"))
    text = cli(store, "explain", NAME, "-n", NS).stdout
    assert f"Steps of v2, promoted, revision {current_revision(store)}:" in text
    assert "in place of v2," not in text


def test_the_gate_the_template_the_retired_deployment_and_an_unseen_generation(
    store: LocalStore,
) -> None:
    gate = "confirm-traffic-increase webhook approve"
    set_status(
        store,
        phase=Phase.PROGRESSING,
        canary_weight=10,
        waiting_for=gate,
        message=f"waiting for {gate} to say yes",
        target_revision="7e3a91c0d2",
        retired_target="accounts-v0",
        scaled_down_at=AT,
        promote_requested="force",
        observed_generation=1,
        conditions=(
            Condition(type="Waiting", status="True", reason="GateClosed",
                      message=f"waiting for {gate} to say yes", last_transition_time=AT),
            Condition(type="Promoted", status="Unknown", reason="Progressing",
                      last_transition_time=AT),
        ),
    )  # fmt: skip
    body = store.get("Canary", NS, NAME)
    assert body is not None
    body["spec"]["suspend"] = True
    store.put(body)
    text = cli(store, "explain", NAME, "-n", NS).stdout
    head = text.split("\n\n")[0].splitlines()
    assert head[1:] == [
        f"  waiting for {gate} (since 2026-01-01 12:00:00) to say yes",
        "  the controller has not seen generation 2 yet (it acted on 1)",
        "  judging pod template 7e3a91c0d2 of Deployment accounts-v2",
        "  promotion asked, at once (--force)",
        "  retired Deployment accounts-v0, scaled to zero at 2026-01-01 12:00:00",
    ]
    assert "Waiting=True GateClosed (2026-01-01 12:00:00): waiting for" in text
    assert "Promoted=Unknown Progressing (2026-01-01 12:00:00)" in text


def test_a_trace_check_names_its_operation_its_spans_and_example_traces(
    store: LocalStore,
) -> None:
    revision = current_revision(store)
    spans = SpanEvidence(
        operation="POST /checkout",
        spans=412,
        sampled=True,
        examples=["4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7a3ce929d0e0e4736"],
        canary_value=612.0,
        stable_value=48.0,
        stable_spans=398,
    )
    failed = record(revision, 0, 10, 30, name="checkout-latency", value=564.0,
                    threshold="<= 200", verdict=Verdict.FAIL, passed=False, samples=None,
                    query="jaeger p99 duration of shop 'POST /checkout' where subset=v2",
                    message="564 is outside <= 200", spans=spans)  # fmt: skip
    set_status(store, phase=Phase.FAILED, step=0, history=(failed,))
    result = cli(store, "explain", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "checkout-latency: fail 564 (wanted <= 200)" in text
    assert "query: jaeger p99 duration of shop 'POST /checkout' where subset=v2" in text
    assert (
        "spans: 412 of 'POST /checkout' judged (a sample: the newest traces up to the "
        "template's limit); canary 612 vs stable 48 (398 stable spans)"
    ) in text
    assert (
        "example traces: 4bf92f3577b34da6a3ce929d0e0e4736, 00f067aa0ba902b7a3ce929d0e0e4736"
    ) in text


def test_a_comparing_check_states_both_rates_with_their_intervals_and_the_proof(
    store: LocalStore,
) -> None:
    revision = current_revision(store)
    spec = CanarySpec.model_validate(
        {
            "service": {"host": "reviews"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {
                "stepWeights": [10, 50],
                "metrics": [{"name": "request-success-rate", "compare": {"against": "stable"}}],
            },
        }
    )
    compare = spec.analysis.metrics[0].compare
    assert compare is not None
    state = sequential.start("request-success-rate", revision=revision, comparison=compare)
    proven = sequential.observe(
        state, step=0, since=AT, counts=sequential.Counts(312, 13, 2800, 28)
    ).record
    assert proven.verdict is ComparisonVerdict.REGRESSION
    failed = record(revision, 0, 10, 30, value=4.17, threshold="vs stable (alpha 0.01, "
                    "minEffect 1.5)", verdict=Verdict.FAIL, passed=False, samples=312,
                    message=comparing.describe(proven), comparison=proven)  # fmt: skip
    set_status(store, phase=Phase.FAILED, step=0, history=(failed,))
    result = cli(store, "explain", NAME, "-n", NS)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert (
        "vs stable: canary 4.2% [1.1, 10.2] vs stable 1.0% [0.40, 2.0], proven worse after "
        "312 canary requests"
    ) in text, text
    assert "counted canary 13 bad of 312, stable 28 bad of 2,800" in text
