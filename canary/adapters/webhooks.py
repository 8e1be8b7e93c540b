"""Webhooks as gates and hooks: a JSON POST, where any 2xx answer means yes.

The payload follows Flagger's (name, namespace, phase, metadata) so existing gate services
(a load tester, a manual-approval service) work unchanged. A timeout, a refused connection or a
non-2xx answer is a "no" that says why; a gate never passes by default.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from canary.api import durations
from canary.api.spec import Webhook
from canary.engine.actions import CallWebhook
from canary.engine.observation import GateResult
from canary.ports import CanaryKey


def call_gate(key: CanaryKey, hook: Webhook, phase: str) -> GateResult:
    payload = {
        "name": key.name,
        "namespace": key.namespace,
        "webhook": hook.name,
        "type": str(hook.type),
        "phase": phase,
        "metadata": hook.metadata,
    }
    request = urllib.request.Request(
        hook.url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=durations.seconds(hook.timeout)) as answer:
            return GateResult(passed=True, message=f"HTTP {answer.status}")
    except urllib.error.HTTPError as exc:
        body = exc.read(200).decode(errors="replace").strip()
        return GateResult(passed=False, message=f"HTTP {exc.code}" + (f": {body}" if body else ""))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return GateResult(passed=False, message=f"{hook.url} unreachable: {reason}")


def call_hook(key: CanaryKey, action: CallWebhook) -> None:
    """A post-rollout hook: fired once with the outcome as its phase; it gates nothing."""
    call_gate(key, action.hook, action.outcome)
