"""Webhook calls as Flagger makes them, so Flagger's load tester and gate services answer ours.

The payload is Flagger's `CanaryWebhookPayload`: `name`, `namespace`, `phase`, `checksum` (the
revision being rolled out) and `metadata` (the webhook's own); an event hook's metadata also
carries `eventMessage`, `eventType` (Normal or Warning) and `timestamp` (Unix milliseconds, as
a string). Header values come from Secrets in the Canary's namespace, read here, so the adapter
only sends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from canary.api.spec import Webhook
from canary.engine.actions import Notify
from canary.ports import CanaryKey, Secrets, WebhookRequest


def payload(
    key: CanaryKey,
    hook: Webhook,
    *,
    phase: str,
    checksum: str,
    event: Notify | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    metadata = dict(hook.metadata)
    if event is not None:
        metadata["eventMessage"] = event.message
        metadata["eventType"] = "Warning" if event.warning else "Normal"
        if now is not None:
            metadata["timestamp"] = str(int(now.timestamp() * 1000))
    return {
        "name": key.name,
        "namespace": key.namespace,
        "phase": phase,
        "checksum": checksum,
        "metadata": metadata,
    }


def request(
    key: CanaryKey,
    hook: Webhook,
    *,
    secrets: Secrets,
    phase: str,
    checksum: str,
    event: Notify | None = None,
    now: datetime | None = None,
) -> WebhookRequest:
    """Raises InvalidSpec when a header's Secret or key is missing."""
    headers = {
        header.name: secrets.value(key.namespace, header.value_from.secret_key_ref)
        for header in hook.headers
    }
    return WebhookRequest(
        url=hook.url,
        payload=payload(key, hook, phase=phase, checksum=checksum, event=event, now=now),
        timeout=hook.timeout_seconds,
        retries=hook.retries,
        headers=headers,
    )
