"""The rollout's one message: what it says in each state, and its buttons only while waiting."""

from __future__ import annotations

import json
from datetime import timedelta

from canary.api.people import APPROVE_ACTION, REJECT_ACTION, ClickValue, Event
from canary.controller.chat import render
from canary.engine.actions import Notify
from tests.unit.controller.chat.samples import KEY, REVISION, T0, approval, check, spec, status


def _actions(blocks: tuple[object, ...]) -> list[dict[str, object]]:
    return [b for b in blocks if isinstance(b, dict) and b.get("type") == "actions"]


def _all_text(message: render.ChatMessage) -> str:
    return json.dumps([message.text, list(message.blocks)], ensure_ascii=False)


def test_progress_headline_checks_and_elapsed() -> None:
    seen = status(step=1, canaryWeight=60, checks=[check(99.87, "pass")])
    message = render.rollout(
        KEY, spec(), seen, started=T0, now=T0 + timedelta(minutes=4, seconds=50)
    )
    assert message.text.splitlines()[0] == (
        "accounts (shop) · Progressing · weight 60% · step 2/2 · running 4m"
    )
    text = _all_text(message)
    assert "request-success-rate: 99.87 (needs >= 99)" in text
    assert _actions(message.blocks) == []
    assert message.fields["weight"] == 60
    assert message.fields["revision"] == REVISION


def test_buttons_only_while_an_approval_waits() -> None:
    waiting = status(approvals=[approval()], waitingFor="approval promotion")
    actions = _actions(render.rollout(KEY, spec(), waiting).blocks)
    assert len(actions) == 1
    approve, reject = actions[0]["elements"]  # type: ignore[misc]
    assert (approve["action_id"], approve["style"]) == (APPROVE_ACTION, "primary")
    assert (reject["action_id"], reject["style"]) == (REJECT_ACTION, "danger")
    value = ClickValue.model_validate_json(approve["value"])
    assert value == ClickValue(canary="shop/accounts", revision=REVISION, gate="promotion")
    assert reject["value"] == approve["value"]

    # Not waiting (waitingFor empty), decided, or a record of an earlier revision: no buttons.
    for seen in (
        status(approvals=[approval()]),
        status(approvals=[approval("approved")], waitingFor="approval promotion"),
        status(approvals=[approval(revision="old")], waitingFor="approval promotion"),
    ):
        assert _actions(render.rollout(KEY, spec(), seen).blocks) == []


def test_a_decided_approval_says_who_how_and_when() -> None:
    decided = status(approvals=[approval("approved")])
    text = _all_text(render.rollout(KEY, spec(), decided))
    assert "promotion: approved by <@U0ALICE> via slack at 2026-01-01 12:06:00 UTC" in text
    cli = status(approvals=[approval("rejected") | {"by": "jane", "via": "cli"}])
    assert "promotion: rejected by jane via cli" in _all_text(render.rollout(KEY, spec(), cli))


def test_failure_names_check_value_threshold_and_explain() -> None:
    failed = status(phase="Failed", canaryWeight=0, checks=[check(91.234, "fail")])
    message = render.rollout(KEY, spec(), failed)
    line = render.failure(KEY, failed)
    assert line == (
        "Failed: request-success-rate was 91.23, needs >= 99. See `canary explain accounts -n shop`"
    )
    assert line in message.text
    # No data is said as such; a chaos failure names its experiment.
    nodata = status(phase="RollingBack", checks=[check(None, "fail", message="no data")])
    assert "request-success-rate was no data" in render.failure(KEY, nodata)
    assert render.failure(KEY, status()) == ""


def test_links_and_chaos() -> None:
    linked = spec(links={"grafana": "https://grafana.example/d/1", "kiali": "http://kiali/x"})
    text = _all_text(render.rollout(KEY, linked, status()))
    assert "<https://grafana.example/d/1|Grafana>" in text
    assert "<http://kiali/x|Kiali>" in text


def test_long_lists_stay_within_slack_limits() -> None:
    many = [check(99.0, "pass", name=f"check-{i:02d}") for i in range(40)]
    message = render.rollout(KEY, spec(), status(checks=many, message="x" * 5000))
    assert len(message.blocks) <= 50
    for block in message.blocks:
        text = block.get("text", {})
        assert len(text.get("text", "") if isinstance(text, dict) else "") <= 3000
    assert "… and 20 more" in _all_text(message)


def test_reply_and_event_message() -> None:
    notice = Notify("MetricFailed", "request-success-rate at weight 20: 91 < 99", warning=True)
    assert render.reply(notice).text == (
        ":warning: MetricFailed: request-success-rate at weight 20: 91 < 99"
    )
    failed = status(phase="Failed", checks=[check(91.0, "fail")])
    rolled = Notify("RolledBack", "rolled back")
    message = render.event_message(KEY, spec(), failed, rolled, Event.ROLLED_BACK)
    assert "canary explain accounts -n shop" in message.text
    assert message.fields["event"] == "rolledBack"
    assert message.fields["reason"] == "RolledBack"
    assert message.fields["canary"] == "accounts"
    assert message.fields["namespace"] == "shop"


def test_duration_is_coarse() -> None:
    assert render.duration(timedelta(seconds=59)) == "0m"
    assert render.duration(timedelta(minutes=89)) == "89m"
    assert render.duration(timedelta(minutes=125)) == "2h05m"
