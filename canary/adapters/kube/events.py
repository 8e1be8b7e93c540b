"""Kubernetes Events on the Canary, as `kubectl describe canary` shows them.

The same reason and message again within a while bumps the count of the Event already written,
as client-go's event correlator does, so a check that fails on every tick of a bad step makes
one Event with a rising count instead of a flood. A failed Event write is logged and dropped:
it must never stop the tick that caused it.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime

import structlog

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import CANARY, EVENT, MERGE_PATCH, ApiError, Rest
from canary.engine.actions import Notify
from canary.errors import CanaryError
from canary.ports import CanaryKey

log = structlog.get_logger("canary.kube.events")

# Repeats further apart than this start a new Event, so a recurring problem shows when it recurred.
SERIES_SECONDS = 600.0
COMPONENT = "canary-controller"


class KubeEvents:
    def __init__(self, rest: Rest, cache: ClusterCache, *, instance: str) -> None:
        self.rest = rest
        self.cache = cache
        self.instance = instance
        self._last: dict[tuple[CanaryKey, str, str], tuple[str, int, datetime]] = {}
        self._lock = threading.Lock()

    def notify(self, key: CanaryKey, notice: Notify) -> None:
        now = datetime.now(UTC)
        series = (key, notice.reason, notice.message)
        with self._lock:
            previous = self._last.get(series)
        try:
            if previous is not None and (now - previous[2]).total_seconds() < SERIES_SECONDS:
                name, count, _ = previous
                self.rest.patch(
                    EVENT.path(key.namespace, name),
                    {"count": count + 1, "lastTimestamp": _time(now)},
                    content_type=MERGE_PATCH,
                )
                recorded = (name, count + 1, now)
            else:
                name = self._create(key, notice, now)
                recorded = (name, 1, now)
        except ApiError as exc:
            if exc.status == 404 and previous is not None:
                # The Event expired (the API server keeps them an hour): start a new series.
                with self._lock:
                    self._last.pop(series, None)
                self.notify(key, notice)
                return
            log.warning("event.failed", reason=notice.reason, error=str(exc))
            return
        except CanaryError as exc:
            log.warning("event.failed", reason=notice.reason, error=str(exc))
            return
        with self._lock:
            self._last[series] = recorded

    def forget(self, key: CanaryKey) -> None:
        with self._lock:
            for series in [series for series in self._last if series[0] == key]:
                del self._last[series]

    def _create(self, key: CanaryKey, notice: Notify, now: datetime) -> str:
        canary = self.cache.of(CANARY).get(key.namespace, key.name) or {}
        meta = canary.get("metadata") or {}
        name = f"{key.name}.{secrets.token_hex(8)}"
        self.rest.post(
            EVENT.path(key.namespace),
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": key.namespace},
                "involvedObject": {
                    "apiVersion": CANARY.api_version,
                    "kind": CANARY.kind,
                    "namespace": key.namespace,
                    "name": key.name,
                    "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": notice.reason,
                "message": notice.message[:1024],
                "type": "Warning" if notice.warning else "Normal",
                "source": {"component": COMPONENT},
                "reportingComponent": COMPONENT,
                "reportingInstance": self.instance,
                "action": notice.reason,
                "firstTimestamp": _time(now),
                "lastTimestamp": _time(now),
                "count": 1,
            },
        )
        return name


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
