"""Two `Chat` backends for teams that only want the messages, one POST per event:

- a Slack-compatible incoming webhook (slack-sdk's `WebhookClient`): `{"text": ..., "blocks":
  [...]}`, which Mattermost and Rocket.Chat accept too (they ignore `blocks`);
- a generic JSON webhook (urllib3): the facts of the event as data, for a relay, a bot of
  one's own, or a log. Its body, one object per event:

      {"canary": "podinfo", "namespace": "apps", "event": "checkFailed",
       "reason": "MetricFailed", "message": "request-success-rate at weight 20: 91.2 < 99",
       "phase": "Progressing", "weight": 20, "step": 2, "steps": 5,
       "revision": "5d1c...", "channel": "#rollouts", "text": "<the one line a person reads>"}

  `event` is one of `spec.notifications[].events`; `channel` only when one is set.

Neither can update a message or open a thread (`threads = False`), so the publisher never
asks; `update`, `ephemeral` and `group_members` raise a permanent ChatError. Each call is one
request with no retry, no redirect and short timeouts: the background worker retries, honouring
`Retry-After` on a 429. A webhook URL is a credential (anyone holding it can post), so it is
never part of an error message or a log line; header values come from Secrets and are never
logged either.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.error import URLError

import urllib3
from slack_sdk.webhook import WebhookClient

from canary.api.chat_provider import IncomingWebhook, JsonWebhook
from canary.errors import ChatError
from canary.ports import ChatMessage, Secrets

TIMEOUT_SECONDS = 5.0
DEFAULT_RETRY_AFTER = 1.0
# What of a refusal's body is read, for its first words in the error.
MAX_BODY = 4096
MESSAGE_CHARS = 80

_sdk_log = logging.getLogger("canary.adapters.chat_webhooks.sdk")
_sdk_log.setLevel(logging.CRITICAL)


class IncomingWebhookChat:
    threads = False

    def __init__(self, url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self._client = WebhookClient(
            url=url, timeout=int(max(1, timeout)), retry_handlers=[], logger=_sdk_log
        )

    def post(self, channel: str, message: ChatMessage, *, thread: str = "") -> str:
        blocks = [dict(block) for block in message.blocks] or None
        try:
            answer = self._client.send(text=message.text, blocks=blocks)
        except (TimeoutError, URLError, OSError) as exc:
            raise ChatError(f"incoming webhook unreachable ({type(exc).__name__})") from None
        _judge("incoming webhook", answer.status_code, answer.headers, answer.body)
        return ""

    def update(self, channel: str, ref: str, message: ChatMessage) -> None:
        raise ChatError("an incoming webhook cannot update a message", permanent=True)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        raise ChatError("an incoming webhook cannot send an ephemeral message", permanent=True)

    def group_members(self, group: str) -> frozenset[str]:
        raise ChatError("an incoming webhook cannot list a user group", permanent=True)


class JsonWebhookChat:
    threads = False

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._url = url
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._pool = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout, total=timeout * 2)
        )

    def post(self, channel: str, message: ChatMessage, *, thread: str = "") -> str:
        body: dict[str, Any] = {**message.fields, "text": message.text}
        if channel:
            body["channel"] = channel
        try:
            answer = self._pool.request(
                "POST",
                self._url,
                body=json.dumps(body).encode(),
                headers=self._headers,
                redirect=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ChatError(f"JSON webhook unreachable ({type(exc).__name__})") from None
        try:
            text = ""
            if not 200 <= answer.status < 300:
                text = answer.read(MAX_BODY, decode_content=True).decode("utf-8", "replace")
        except urllib3.exceptions.HTTPError:
            text = ""
        finally:
            answer.release_conn()
        _judge("JSON webhook", answer.status, dict(answer.headers), text)
        return ""

    def update(self, channel: str, ref: str, message: ChatMessage) -> None:
        raise ChatError("a JSON webhook cannot update a message", permanent=True)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        raise ChatError("a JSON webhook cannot send an ephemeral message", permanent=True)

    def group_members(self, group: str) -> frozenset[str]:
        raise ChatError("a JSON webhook cannot list a user group", permanent=True)


def incoming_chat_for(
    spec: IncomingWebhook, namespace: str, secrets: Secrets
) -> IncomingWebhookChat:
    """The ChatProvider's `slackWebhook` backend, its URL read from its Secret."""
    return IncomingWebhookChat(secrets.value(namespace, spec.url).strip())


def json_chat_for(spec: JsonWebhook, namespace: str, secrets: Secrets) -> JsonWebhookChat:
    """The ChatProvider's `webhook` backend, its headers' values read from their Secrets."""
    headers = {
        header.name: secrets.value(namespace, header.value_from.secret_key_ref)
        for header in spec.headers
    }
    return JsonWebhookChat(spec.url, headers=headers)


def _judge(what: str, status: int, headers: Mapping[str, Any], body: str) -> None:
    """Raises the ChatError an answer means; a 2xx returns."""
    if 200 <= status < 300:
        return
    said = " ".join(str(body or "").split())[:MESSAGE_CHARS]
    why = f"{what}: HTTP {status}" + (f" {said}" if said else "")
    if status == 429:
        raise ChatError(why, retry_after=_retry_after(headers))
    if status >= 500 or status == 408:
        raise ChatError(why)
    # A redirect is refused (the URL is a credential, and a POST must not turn into a GET), and
    # a 4xx (Slack's no_service, invalid_token, channel_is_archived) will not get better.
    raise ChatError(why, permanent=True)


def _retry_after(headers: Mapping[str, Any]) -> float:
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(0.0, float(str(raw).strip()))
            except ValueError:
                break
    return DEFAULT_RETRY_AFTER
