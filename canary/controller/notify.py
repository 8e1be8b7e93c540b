"""The notifier fan-out: every Notify goes to each notifier in turn (the log and Kubernetes
Events), and one that fails never keeps the others from hearing it. Chat is not one of them:
its messages are about the whole rollout and leave from a queue (controller/chat/)."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from canary.engine.actions import Notify
from canary.errors import CanaryError
from canary.ports import CanaryKey, Notifier

log = structlog.get_logger("canary.notify")


class LogNotifier:
    """Every event as a structured log line, bound to its Canary by the tick's context."""

    def notify(self, key: CanaryKey, notice: Notify) -> None:
        (log.warning if notice.warning else log.info)(
            "event", reason=notice.reason, message=notice.message
        )


class FanOut:
    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = tuple(notifiers)

    def notify(self, key: CanaryKey, notice: Notify) -> None:
        for notifier in self.notifiers:
            try:
                notifier.notify(key, notice)
            except CanaryError as exc:
                log.warning(
                    "notify.failed",
                    notifier=type(notifier).__name__,
                    reason=notice.reason,
                    error=str(exc),
                )
