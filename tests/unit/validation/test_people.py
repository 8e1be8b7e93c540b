"""`canary.validation.people`: notifications and approvals against the ChatProviders given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.validation.documents import canary, messages


def _provider(name: str = "team-slack", **spec: Any) -> dict[str, Any]:
    backend = spec or {"slack": {"token": {"name": "slack", "key": "token"}}, "channel": "#ops"}
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "ChatProvider",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": backend,
    }


def _notified(provider: str = "team-slack", **fields: Any) -> dict[str, Any]:
    return canary(
        notifications=[{"provider": provider, **fields}],
        approvals={"before": ["promotion"], "approvers": {"users": ["U0ALICE"]}},
    )


def test_a_canary_with_its_slack_provider_has_no_findings(tmp_path: Path) -> None:
    assert messages(tmp_path, _notified(), _provider()) == []


def test_a_provider_not_in_the_paths_is_fine_when_none_are(tmp_path: Path) -> None:
    assert messages(tmp_path, _notified("elsewhere")) == []


def test_a_missing_provider_a_missing_channel_and_nobody_to_click(tmp_path: Path) -> None:
    hook = _provider("hook", webhook={"url": "https://hooks.example.com/x"})
    bare = _provider("bare", slack={"token": {"name": "slack", "key": "token"}})
    document = canary(
        notifications=[{"provider": "team-slak"}, {"provider": "hook"}],
        approvals={"before": ["promotion"], "approvers": {"groups": ["S0OPS"]}},
    )
    assert messages(tmp_path, document, hook, bare) == [
        "Canary shop/web spec.notifications[0].provider: ChatProvider shop/team-slak not found "
        "(in shop: bare, hook)",
        "Canary shop/web spec.approvals.approvers: no notification goes through a Slack bot "
        "(ChatProvider with `slack`), so nobody gets buttons to click; only `canary "
        "approve|reject` can decide",
    ]
    no_channel = messages(tmp_path, _notified("bare"), bare)
    assert no_channel == [
        "Canary shop/web spec.notifications[0].channel: ChatProvider shop/bare names no channel "
        "and neither does this notification: where would the messages go?"
    ]


def test_a_chat_provider_with_two_backends_or_none_is_refused(tmp_path: Path) -> None:
    both = _provider(
        "both",
        slack={"token": {"name": "s", "key": "t"}},
        webhook={"url": "https://hooks.example.com/x"},
    )
    [line] = messages(tmp_path, both)
    assert "exactly one of slack, slackWebhook, webhook must be set" in line
    [line] = messages(tmp_path, _provider("none", channel="#ops"))
    assert "exactly one of slack, slackWebhook, webhook must be set" in line


def test_approvers_must_be_slack_ids(tmp_path: Path) -> None:
    document = canary(approvals={"before": ["promotion"], "approvers": {"users": ["alice"]}})
    [line] = messages(tmp_path, document)
    assert "spec.approvals.approvers.users[0]" in line
