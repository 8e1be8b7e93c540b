"""The errors adapters raise, translated at the boundary so no library exception reaches the loop.

    CanaryError
    ├── InvalidSpec      permanent: the Canary or an object it names cannot be acted on
    │                    (a missing VirtualService, a route name that does not exist). The
    │                    controller records an InvalidSpec condition and patches nothing; it
    │                    does not retry until something changes.
    ├── Unavailable      temporary: a backend is down or slow (API server, Prometheus, Envoy).
    │                    The tick is abandoned without a write and retried after `retry_after`.
    └── ChatError        a chat backend did not take a message: queued and retried in the
                         background (after `retry_after` when it said so) unless `permanent`;
                         never the rollout's concern.

A PromQL error is neither: it is a measurement of kind `error` (the engine judges it like no
data), because a query can fail for one metric while the others still answer.
"""

from __future__ import annotations


class CanaryError(Exception):
    pass


class InvalidSpec(CanaryError):
    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Unavailable(CanaryError):
    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChatError(CanaryError):
    """A chat backend did not take a message."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
