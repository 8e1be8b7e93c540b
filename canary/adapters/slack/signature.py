"""Slack's request signatures, checked by slack-sdk's `SignatureVerifier`: `X-Slack-Signature`
is `v0=` + HMAC-SHA256(signing secret, `v0:{timestamp}:{body}`), and a timestamp more than
five minutes away from now fails. The controller's HTTP endpoint calls this through its
`SignatureCheck` port, once per signing secret it knows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from slack_sdk.signature import Clock, SignatureVerifier


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackSignatures:
    """`(secret, body, headers) -> bool`; `now` is for tests that sign in the past."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._clock = _Clock(now)

    def __call__(self, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
        try:
            verifier = SignatureVerifier(secret, clock=self._clock)
            return verifier.is_valid_request(body, dict(headers))
        except (ValueError, TypeError):
            # An empty secret, a timestamp that is not a number, a signature that is not
            # ASCII: the SDK raises where the answer is simply "not signed by Slack".
            return False
