"""A Canary waiting at an approval gate, its Slack provider, and clicks on its message: what the
tests of approval clicks (clicks.py, the HTTP endpoint, Socket Mode) share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient

from canary.api.chat_provider import ChatProvider
from canary.api.people import APPROVE_ACTION, ApprovalRecord, ClickValue
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Phase
from canary.errors import ChatError
from canary.fakes import FakeSecrets, FakeStore
from canary.ports import CanaryKey, ChatMessage, StoredCanary
from tests.slack import signing

KEY = CanaryKey("shop", "podinfo")
PROVIDER = "slack-team"
REVISION = "rev-2"
GATE = "promotion"
CHANNEL = "C0ROLLOUT"
SIGNING_SECRET = "s3cr3t-signing"
BOT_TOKEN = "xoxb-canary-test"
APP_TOKEN = "xapp-1-canary-test"
WHEN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def spec(*, users: tuple[str, ...] = ("U0ALICE",), groups: tuple[str, ...] = ()) -> CanarySpec:
    return CanarySpec.model_validate(
        {
            "service": {"host": "podinfo"},
            "stable": {"subset": "v1"},
            "canary": {"subset": "v2"},
            "analysis": {"interval": "10s", "stepWeights": [20, 60]},
            "notifications": [{"provider": PROVIDER, "channel": CHANNEL}],
            "approvals": {
                "before": ["promotion"],
                "approvers": {"users": list(users), "groups": list(groups)},
            },
        }
    )


def waiting(gate: str = GATE, revision: str = REVISION) -> CanaryStatus:
    return CanaryStatus(
        phase=Phase.PROGRESSING,
        revision=revision,
        waiting_for=f"approval {gate}",
        canary_weight=60,
        step=1,
        approvals=(ApprovalRecord(gate=gate, revision=revision, step=1, requested_at=WHEN),),
    )


def provider(api_url: str = "https://slack.com/api/", *, app_token: bool = True) -> ChatProvider:
    slack: dict[str, Any] = {
        "token": {"name": "slack", "key": "token"},
        "signingSecret": {"name": "slack", "key": "signing"},
        "apiUrl": api_url,
    }
    if app_token:
        slack["appToken"] = {"name": "slack", "key": "app"}
    return ChatProvider.model_validate(
        {"metadata": {"name": PROVIDER, "namespace": KEY.namespace}, "spec": {"slack": slack}}
    )


def secrets() -> FakeSecrets:
    ns = KEY.namespace
    return FakeSecrets(
        {
            (ns, "slack", "token"): BOT_TOKEN,
            (ns, "slack", "signing"): SIGNING_SECRET,
            (ns, "slack", "app"): APP_TOKEN,
        }
    )


def store(
    *,
    status: CanaryStatus | None = None,
    canary_spec: CanarySpec | None = None,
    api_url: str = "https://slack.com/api/",
) -> FakeStore:
    stored = StoredCanary(key=KEY, spec=canary_spec or spec(), status=status or waiting())
    return FakeStore(
        stored={KEY: stored}, chat_providers={(KEY.namespace, PROVIDER): provider(api_url)}
    )


def value(*, canary: str = str(KEY), revision: str = REVISION, gate: str = GATE) -> str:
    return ClickValue(canary=canary, revision=revision, gate=gate).model_dump_json()


def click(
    *,
    user: str = "U0ALICE",
    action_id: str = APPROVE_ACTION,
    value_text: str | None = None,
    action_ts: str = "1700000000.000001",
    response_url: str = "http://127.0.0.1:9/actions/x",
) -> dict[str, Any]:
    return signing.block_actions(
        user=user,
        action_id=action_id,
        value=value() if value_text is None else value_text,
        channel=CHANNEL,
        message_ts="1700000000.000100",
        response_url=response_url,
        action_ts=action_ts,
    )


def decided(status: CanaryStatus, *, by: str, via: str = "slack") -> CanaryStatus:
    """The status after the engine approved the waiting gate."""
    last = status.approvals[-1].model_copy(
        update={"decision": "approved", "by": by, "via": via, "decided_at": WHEN}
    )
    return status.model_copy(update={"approvals": (*status.approvals[:-1], last)})


def with_status(store_: FakeStore, status: CanaryStatus) -> None:
    store_.stored[KEY] = replace(store_.stored[KEY], status=status)


@dataclass
class FakeChat:
    """A Chat that records ephemerals and answers group lookups from a table."""

    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    failing_groups: bool = False
    threads: bool = True
    ephemerals: list[tuple[str, str, str]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)

    def post(self, channel: str, message: ChatMessage, *, thread: str = "") -> str:
        raise AssertionError("clicks never post")

    def update(self, channel: str, ref: str, message: ChatMessage) -> None:
        raise AssertionError("clicks never update")

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        self.ephemerals.append((channel, user, text))

    def group_members(self, group: str) -> frozenset[str]:
        self.lookups.append(group)
        if self.failing_groups:
            raise ChatError("usergroups.users.list: 500", retry_after=None)
        return self.groups.get(group, frozenset())


class WebChat:
    """A minimal Chat on slack-sdk's WebClient, for tests against the local Slack (the product's
    own Slack adapter is canary/adapters/slack/web.py)."""

    threads = True

    def __init__(self, token: str, base_url: str) -> None:
        self.client = WebClient(token=token, base_url=base_url, timeout=5)

    def post(self, channel: str, message: ChatMessage, *, thread: str = "") -> str:
        answer = self.client.chat_postMessage(channel=channel, text=message.text)
        return str(answer["ts"])

    def update(self, channel: str, ref: str, message: ChatMessage) -> None:
        self.client.chat_update(channel=channel, ts=ref, text=message.text)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        self.client.chat_postEphemeral(channel=channel, user=user, text=text)

    def group_members(self, group: str) -> frozenset[str]:
        answer = self.client.usergroups_users_list(usergroup=group)
        return frozenset(answer["users"])


def command_of(store_: FakeStore) -> dict[str, Any] | None:
    command = store_.stored[KEY].command
    return None if command is None else json.loads(command.model_dump_json())
