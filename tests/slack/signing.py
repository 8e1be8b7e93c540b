"""What Slack POSTs to an interactivity endpoint when a button is clicked, signed as Slack signs
it: a form body `payload=<json>`, `X-Slack-Request-Timestamp`, and `X-Slack-Signature` =
`v0=` + hex HMAC-SHA256(signing secret, `v0:{timestamp}:{body}`).

`signed` is a good request; `forged` is signed with another secret; `stale` is older than the
five minutes a receiver accepts. A replay is the same `SignedRequest` sent twice: its signature
stays valid, so only the receiver's memory of what it already decided can refuse it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

STALE_AFTER = 5 * 60


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    headers: dict[str, str]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed(payload: dict[str, Any], secret: str, now: float) -> SignedRequest:
    return _build(payload, secret, int(now))


def forged(
    payload: dict[str, Any], now: float, secret: str = "not-the-signing-secret"
) -> SignedRequest:
    return _build(payload, secret, int(now))


def stale(
    payload: dict[str, Any], secret: str, now: float, age: int = STALE_AFTER + 1
) -> SignedRequest:
    """Correctly signed, but `age` seconds old when it arrives."""
    return _build(payload, secret, int(now) - age)


def _build(payload: dict[str, Any], secret: str, timestamp: int) -> SignedRequest:
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
    return SignedRequest(
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": signature(secret, timestamp, body),
        },
    )


def block_actions(
    *,
    user: str,
    action_id: str,
    value: str,
    channel: str,
    message_ts: str,
    response_url: str,
    team_id: str = "T0CANARY",
    app_id: str = "A0CANARY",
    action_ts: str = "1700000000.000001",
) -> dict[str, Any]:
    """The payload of a button click on a message, with the fields Slack sends that canary reads
    (who, which button and its value, which message in which channel, where to answer)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team_id},
        "api_app_id": app_id,
        "token": "verification-token-deprecated",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{action_ts}.trigger",
        "team": {"id": team_id, "domain": "canary-test"},
        "channel": {"id": channel, "name": "rollouts"},
        "message": {"type": "message", "ts": message_ts, "text": ""},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "decision",
                "value": value,
                "action_ts": action_ts,
                "text": {"type": "plain_text", "text": action_id.title()},
            }
        ],
    }
