"""The chat side of the controller on the local Slack: the real Slack adapter (slack-sdk's
WebClient) behind the publisher and its outbox, ChatProviders in a fake Store, the token in a
fake Secret, the counts in the controller's own Telemetry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from canary.adapters import chat_webhooks
from canary.adapters.slack import web as slack_web
from canary.api.chat_provider import ChatProvider, IncomingWebhook, JsonWebhook, SlackBot
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus
from canary.controller.chat.outbox import Outbox
from canary.controller.chat.publisher import ChatFactory, ChatPublisher
from canary.controller.telemetry import Telemetry
from canary.engine.actions import Notify
from canary.fakes import FakeSecrets, FakeStore
from canary.ports import CanaryKey
from tests.slack.server import SlackServer

NS = "shop"
KEY = CanaryKey(NS, "accounts")
CHANNEL = "C0ROLLOUT"
FACTORIES: dict[type, ChatFactory] = {
    SlackBot: slack_web.chat_for,
    IncomingWebhook: chat_webhooks.incoming_chat_for,
    JsonWebhook: chat_webhooks.json_chat_for,
}


def provider(name: str, spec: dict[str, Any]) -> ChatProvider:
    return ChatProvider.model_validate({"metadata": {"name": name, "namespace": NS}, "spec": spec})


class ChatWorld:
    def __init__(self, slack: SlackServer, **outbox: Any) -> None:
        self.slack = slack
        self.telemetry = Telemetry()
        self.store = FakeStore()
        self.secrets = FakeSecrets(
            values={
                (NS, "slack", "token"): slack.workspace.bot_token,
                (NS, "slack", "wrong"): "xoxb-not-this-one",
                (NS, "slack", "webhook"): slack.webhook_url,
            }
        )
        options = {"backoff": 0.05, "backoff_max": 0.2, **outbox}
        self.outbox = Outbox(count=self.telemetry.notification, **options)
        self.publisher = ChatPublisher(
            store=self.store, secrets=self.secrets, outbox=self.outbox, factories=FACTORIES
        )
        self.add("team-slack", slack_bot(slack))

    def add(self, name: str, spec: dict[str, Any]) -> None:
        self.store.chat_providers[(NS, name)] = provider(name, spec)

    def publish(
        self,
        spec: CanarySpec,
        status: CanaryStatus,
        *notices: Notify,
        now: datetime | None = None,
    ) -> None:
        self.publisher.publish(KEY, spec, status, notices, now=now or datetime.now().astimezone())

    def settle(self, timeout: float = 10.0) -> None:
        assert self.outbox.wait_idle(timeout), f"{self.outbox.pending()} messages still queued"

    def count(self, provider: str, result: str) -> float:
        value = self.telemetry.registry.get_sample_value(
            "canary_notifications_total", {"provider": f"{NS}/{provider}", "result": result}
        )
        return value or 0.0

    def problems(self) -> tuple[str, ...]:
        return self.publisher.problems(KEY)


def slack_bot(slack: SlackServer, key: str = "token", **extra: Any) -> dict[str, Any]:
    return {"slack": {"token": {"name": "slack", "key": key}, "apiUrl": slack.url}, **extra}


def notified(spec: CanarySpec, notifications: Sequence[dict[str, Any]]) -> CanarySpec:
    return CanarySpec.model_validate(
        {**spec.model_dump(by_alias=True, exclude_none=True), "notifications": list(notifications)}
    )
