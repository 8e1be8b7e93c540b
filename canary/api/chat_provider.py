"""`ChatProvider`: where a team's rollout messages go and with which credentials, declared once
and named by many Canaries' `spec.notifications` (as Flagger's AlertProvider).

Exactly one backend: Slack's bot API (one message per rollout, updated in place, details in its
thread, approval buttons), a Slack-compatible incoming webhook (Mattermost and Rocket.Chat take
the same payload; messages only), or a generic JSON webhook. Every credential, a webhook URL
included (it is one), comes from a Secret in the provider's namespace.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from canary.api import API_VERSION
from canary.api.base import Model, ObjectMeta
from canary.api.people import URL_PATTERN
from canary.api.secrets import SecretHeader, SecretKeyRef

SLACK_API = "https://slack.com/api/"


class SlackBot(Model):
    token: SecretKeyRef = Field(description="The bot token (xoxb-…).")
    signing_secret: SecretKeyRef | None = Field(
        default=None,
        description="The app's signing secret: approval clicks through `canary run`'s HTTP "
        "endpoint are verified with it.",
    )
    app_token: SecretKeyRef | None = Field(
        default=None,
        description="An app-level token (xapp-…): approval clicks arrive through Socket Mode, "
        "with no public endpoint.",
    )
    api_url: str = Field(
        default=SLACK_API,
        pattern=URL_PATTERN,
        description="The Web API's base URL (Slack's own unless a proxy stands in between).",
    )


class IncomingWebhook(Model):
    url: SecretKeyRef = Field(
        description="A Secret key holding the webhook URL (Slack, Mattermost, Rocket.Chat)."
    )


class JsonWebhook(Model):
    url: str = Field(pattern=URL_PATTERN, description="The URL each event is POSTed to as JSON.")
    headers: list[SecretHeader] = Field(
        default_factory=list, description="Headers sent with every call, values from Secrets."
    )


class ChatProviderSpec(Model):
    slack: SlackBot | None = Field(default=None, description="Slack's bot API.")
    slack_webhook: IncomingWebhook | None = Field(
        default=None, description="A Slack-compatible incoming webhook: messages only."
    )
    webhook: JsonWebhook | None = Field(
        default=None, description="A generic JSON webhook: one POST per event."
    )
    channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="The channel a notification without its own posts to.",
    )

    @model_validator(mode="after")
    def _one_backend(self) -> ChatProviderSpec:
        named = [name for name in ("slack", "slack_webhook", "webhook") if getattr(self, name)]
        if len(named) != 1:
            raise ValueError(
                "exactly one of slack, slackWebhook, webhook must be set"
                + (f" (found {', '.join(named)})" if named else "")
            )
        return self

    @property
    def kind(self) -> Literal["slack", "slack_webhook", "webhook"]:
        if self.slack is not None:
            return "slack"
        return "slack_webhook" if self.slack_webhook is not None else "webhook"

    @property
    def backend(self) -> Any:
        return getattr(self, self.kind)


class ChatProvider(Model):
    api_version: Literal["canary.dev/v1alpha1"] = Field(
        default=API_VERSION, description="canary.dev/v1alpha1"
    )
    kind: Literal["ChatProvider"] = Field(default="ChatProvider", description="ChatProvider")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: ChatProviderSpec = Field(description="The backend and its credentials.")
