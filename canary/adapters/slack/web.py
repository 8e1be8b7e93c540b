"""Slack's bot API (chat.postMessage, chat.update, chat.postEphemeral, usergroups.users.list)
as the `Chat` port, on slack-sdk's `WebClient`.

One call is one HTTP request: the client gets no retry handlers, because the SDK's would sleep
inside the call (its `RateLimitErrorRetryHandler` waits out a whole `Retry-After`, its
connection handler backs off), and the caller is a background worker that does its own waiting,
per provider, without holding up other providers' messages. So every outcome is translated
here, once, into `ChatError`:

- 429 `ratelimited`: `retry_after` from the `Retry-After` header (1 s when it is missing);
- Slack's answers that trying again cannot fix (a bad or revoked token, a missing channel, a
  bot not in it, a message that cannot be updated...): `permanent`;
- a 5xx, Slack's own `internal_error`/`fatal_error`/`service_unavailable`, a timeout, a refused
  or reset connection: retryable.

The token travels only in the client's Authorization header: it is never part of an error
message, and the SDK's own logger is kept quiet (its debug lines would carry request bodies and
its error lines repeat what the worker already logs once per message).
"""

from __future__ import annotations

import http.client
import logging
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from canary.api.chat_provider import SlackBot
from canary.errors import ChatError
from canary.ports import ChatMessage, Secrets

# Short: a message that cannot go now is retried later, and the worker serves other providers.
TIMEOUT_SECONDS = 5
DEFAULT_RETRY_AFTER = 1.0
# Slack's errors that mean "try again later"; any other `ok: false` is permanent.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

_sdk_log = logging.getLogger("canary.adapters.slack.sdk")
_sdk_log.setLevel(logging.CRITICAL)


class SlackChat:
    """The `Chat` port on Slack's bot API: one message per rollout, updated, with a thread."""

    threads = True

    def __init__(self, token: str, *, api_url: str, timeout: int = TIMEOUT_SECONDS) -> None:
        base = api_url if api_url.endswith("/") else api_url + "/"
        self._client = WebClient(
            token=token, base_url=base, timeout=timeout, retry_handlers=[], logger=_sdk_log
        )

    def post(self, channel: str, message: ChatMessage, *, thread: str = "") -> str:
        args: dict[str, Any] = {"channel": channel, "text": message.text}
        if message.blocks:
            args["blocks"] = [dict(block) for block in message.blocks]
        if thread:
            args["thread_ts"] = thread
        answer = _call("chat.postMessage", lambda: self._client.chat_postMessage(**args))
        return str(answer.get("ts") or "")

    def update(self, channel: str, ref: str, message: ChatMessage) -> None:
        # Blocks are always sent: an empty list clears the buttons of a decided approval.
        blocks = [dict(block) for block in message.blocks]
        _call(
            "chat.update",
            lambda: self._client.chat_update(
                channel=channel, ts=ref, text=message.text, blocks=blocks
            ),
        )

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        _call(
            "chat.postEphemeral",
            lambda: self._client.chat_postEphemeral(channel=channel, user=user, text=text),
        )

    def group_members(self, group: str) -> frozenset[str]:
        answer = _call(
            "usergroups.users.list", lambda: self._client.usergroups_users_list(usergroup=group)
        )
        users = answer.get("users") or []
        return frozenset(str(user) for user in users)


def chat_for(spec: SlackBot, namespace: str, secrets: Secrets) -> SlackChat:
    """The ChatProvider's `slack` backend, its token read from its Secret (InvalidSpec when the
    Secret or key is missing, Unavailable when it cannot be read now)."""
    token = secrets.value(namespace, spec.token).strip()
    return SlackChat(token, api_url=spec.api_url)


def _call(method: str, call: Any) -> Any:
    try:
        return call()
    except SlackApiError as exc:
        raise _api_error(method, exc.response) from None
    except (TimeoutError, URLError, http.client.HTTPException, ConnectionError) as exc:
        raise ChatError(f"{method}: Slack unreachable ({_reason(exc)})") from None
    except SlackClientError as exc:
        # A bad base URL or proxy: nothing a retry changes.
        raise ChatError(f"{method}: {type(exc).__name__}", permanent=True) from None


def _api_error(method: str, response: Any) -> ChatError:
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    code = str(data.get("error") or "") if isinstance(data, dict) else ""
    if status == 429 or code == "ratelimited":
        retry_after = _retry_after(getattr(response, "headers", None) or {})
        return ChatError(f"{method}: ratelimited", retry_after=retry_after)
    if status >= 500:
        return ChatError(f"{method}: HTTP {status}")
    if code in TRANSIENT_ERRORS:
        return ChatError(f"{method}: {code}")
    if status != 200:
        return ChatError(f"{method}: HTTP {status} {code}".rstrip(), permanent=True)
    return ChatError(f"{method}: {code or 'refused'}", permanent=True)


def _retry_after(headers: Any) -> float:
    for name, value in dict(headers).items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(0.0, float(str(raw).strip()))
            except ValueError:
                break
    return DEFAULT_RETRY_AFTER


def _reason(exc: BaseException) -> str:
    if isinstance(exc, URLError) and not isinstance(exc.reason, str):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return type(exc).__name__
