"""`POST /slack/interactions`: Slack's interactivity Request URL, on the controller's own HTTP
server (behind an Ingress), for teams that give the controller a public endpoint rather than a
Socket Mode connection.

Nothing is believed before the signature is: the body is bounded by its Content-Length before a
byte is read (413 above `max_body`), read against a deadline, and verified with the signing
secret of every Slack ChatProvider that some Canary's notifications name (`SignatureCheck`, the
slack-sdk verifier in `adapters/slack/signature.py`). A wrong signature, or one older than five
minutes, is 401 and changes nothing. The providers whose secret verified it are the ones the
click came through (`Clicks` decides only for Canaries notified through them).

A verified request seen again within the five minutes its signature stays valid is a replay,
or Slack retrying one it found slow: answered "already handled", with no second decision. The
decide-once rules of `Clicks` and the engine would refuse it anyway; this keeps it from
producing a second answer too. Slack wants its answer within 3 s: the handler writes at most
one annotation, and sends the person's ephemeral answer only after it answered Slack.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qs

import structlog

from canary.controller.clicks import Clicks, ProviderKey, slack_providers
from canary.controller.serve import Answer
from canary.errors import CanaryError
from canary.ports import Secrets, Store

log = structlog.get_logger("canary.interactions")

PATH = "/slack/interactions"
MAX_BODY = 64 * 1024
# How long a signature stays valid, so how long a replay must be remembered.
SIGNATURE_SECONDS = 5 * 60
REMEMBERED = 10_000
READ_SECONDS = 5.0
FORM = "application/x-www-form-urlencoded"


class SignatureCheck(Protocol):
    def __call__(self, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """Whether `body` with these headers was signed with `secret`, less than 5 min ago."""
        ...


class Interactions:
    """The POST route; `serve.HealthServer(posts={PATH: interactions})`."""

    def __init__(
        self,
        *,
        store: Store,
        secrets: Secrets,
        clicks: Clicks,
        verify: SignatureCheck,
        max_body: int = MAX_BODY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.clicks = clicks
        self.verify = verify
        self.max_body = max_body
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __call__(self, headers: Mapping[str, str], stream: io.BufferedIOBase) -> Answer:
        length = headers.get("content-length")
        if length is None:
            return Answer(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required\n")
        if not length.isdigit():
            return Answer(HTTPStatus.BAD_REQUEST, "a bad Content-Length\n")
        if int(length) > self.max_body:
            log.warning("interactions.too_large", length=int(length))
            return Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"over {self.max_body} bytes\n")
        body = _read(stream, int(length), self.monotonic() + READ_SECONDS, self.monotonic)
        if body is None:
            return Answer(HTTPStatus.BAD_REQUEST, "the body ended before its Content-Length\n")
        providers = self._signed_by(body, headers)
        if not providers:
            log.warning("interactions.unsigned", length=len(body))
            return Answer(HTTPStatus.UNAUTHORIZED, "not signed by a Slack app we know\n")
        if headers.get("content-type", "").partition(";")[0].strip().lower() != FORM:
            return Answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"expected {FORM}\n")
        payload = _payload(body)
        if payload is None:
            return Answer(HTTPStatus.BAD_REQUEST, "expected payload=<a JSON object>\n")
        if not self._first_time(headers.get("x-slack-signature", "")):
            log.info("interactions.replayed")
            return Answer(HTTPStatus.OK, "already handled\n")
        result = self.clicks.decide(payload, providers=providers)
        return Answer(HTTPStatus.OK, result.message + "\n", then=result.reply)

    def _signed_by(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderKey]:
        if "x-slack-signature" not in headers or "x-slack-request-timestamp" not in headers:
            return []
        found = []
        for key, provider in slack_providers(self.store).items():
            slack = provider.spec.slack
            if slack is None or slack.signing_secret is None:
                continue
            try:
                secret = self.secrets.value(key.namespace, slack.signing_secret)
            except CanaryError as exc:
                log.warning("interactions.no_secret", provider=str(key), error=str(exc))
                continue
            if self.verify(secret, body, headers):
                found.append(key)
        return found

    def _first_time(self, signature: str) -> bool:
        now = self.monotonic()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            if signature in self._seen:
                return False
            if len(self._seen) >= REMEMBERED:
                # Full of fresh ones: forget the oldest; the decide-once rules still hold.
                self._seen.popitem(last=False)
            self._seen[signature] = now + SIGNATURE_SECONDS
            return True


def _read(
    stream: io.BufferedIOBase, length: int, deadline: float, monotonic: Callable[[], float]
) -> bytes | None:
    """Exactly `length` bytes, read in pieces so a client trickling them in gives up its thread
    at `deadline`; None when the stream ends or the deadline passes first."""
    parts: list[bytes] = []
    left = length
    while left > 0:
        if monotonic() > deadline:
            return None
        chunk = stream.read1(min(left, 16384))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _payload(body: bytes) -> dict[str, object] | None:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=8)
        [text] = form["payload"]
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError, KeyError):
        return None
    return payload if isinstance(payload, dict) else None
