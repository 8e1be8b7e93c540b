"""Webhooks as gates and hooks: a JSON POST, where any 2xx answer means yes.

A timeout, a refused connection or a non-2xx answer is a "no" that says why; a gate never
passes by default.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from canary.engine.observation import GateResult
from canary.ports import WebhookRequest


class HttpWebhooks:
    def call(self, request: WebhookRequest) -> GateResult:
        sent = urllib.request.Request(
            request.url,
            data=json.dumps(dict(request.payload)).encode(),
            headers={"Content-Type": "application/json", **request.headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(sent, timeout=request.timeout) as answer:
                return GateResult(passed=True, message=f"HTTP {answer.status}")
        except urllib.error.HTTPError as exc:
            body = exc.read(200).decode(errors="replace").strip()
            return GateResult(
                passed=False, message=f"HTTP {exc.code}" + (f": {body}" if body else "")
            )
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return GateResult(passed=False, message=f"{request.url} unreachable: {reason}")
