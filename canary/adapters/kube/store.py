"""The Store on a Kubernetes API server: reads from the watch-fed cache, writes status alone.

Reads never call the API server: a tick that has nothing to write costs no request. A Canary's
spec is parsed once per generation and its status once per resourceVersion, so the engine gets
the same spec object tick after tick (and reuses what it worked out for it). The status goes
through the status subresource as a whole (PUT, so a field the engine cleared is cleared), with
the resourceVersion the cache holds; a conflict re-reads the object and tries again, since the
controller (the lease holder) is the status's only writer and the newer version differs only in
what someone else wrote (the spec, labels), which a status write leaves alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import CANARY, METRIC_TEMPLATE, ApiError, Body, Rest
from canary.api import chaos, commands
from canary.api import problems as api_problems
from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus
from canary.errors import InvalidSpec, Unavailable
from canary.ports import CanaryKey, StoredCanary

log = structlog.get_logger("canary.kube.store")

CONFLICT_RETRIES = 3


@dataclass(frozen=True, slots=True)
class _Parsed:
    uid: str
    generation: int
    spec: CanarySpec | None
    problems: tuple[str, ...]


class KubeStore:
    def __init__(self, rest: Rest, cache: ClusterCache) -> None:
        self.rest = rest
        self.cache = cache
        self._specs: dict[CanaryKey, _Parsed] = {}
        self._statuses: dict[CanaryKey, tuple[str, CanaryStatus]] = {}
        self._templates: dict[tuple[str, str], tuple[str, MetricTemplate]] = {}

    def canaries(self) -> list[StoredCanary]:
        informer = self.cache.of(CANARY)
        stored = [self._stored(body) for body in informer.items()]
        live = {canary.key for canary in stored}
        for gone in [key for key in self._specs if key not in live]:
            self._specs.pop(gone, None)
            self._statuses.pop(gone, None)
        return sorted(stored, key=lambda canary: canary.key)

    def canary(self, key: CanaryKey) -> StoredCanary | None:
        body = self.cache.of(CANARY).get(key.namespace, key.name)
        return None if body is None else self._stored(body)

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        body = self.cache.of(METRIC_TEMPLATE).get(namespace, name)
        if body is None:
            return None
        version = _resource_version(body)
        cached = self._templates.get((namespace, name))
        if cached is None or cached[0] != version:
            try:
                template = MetricTemplate.model_validate(_without_status(body))
            except ValidationError as exc:
                raise InvalidSpec(
                    *(
                        f"MetricTemplate {namespace}/{name}: {line}"
                        for line in api_problems.lines(exc, MetricTemplate)
                    )
                ) from exc
            cached = (version, template)
            self._templates[(namespace, name)] = cached
        return cached[1]

    def write_status(self, key: CanaryKey, status: CanaryStatus) -> None:
        informer = self.cache.of(CANARY)
        body = informer.get(key.namespace, key.name)
        wire = status.to_wire()
        for attempt in range(1, CONFLICT_RETRIES + 1):
            if body is None:
                log.info("status.gone", canary=str(key))
                return
            updated = {**body, "status": wire}
            try:
                written = self.rest.put(CANARY.path(key.namespace, key.name, "status"), updated)
            except ApiError as exc:
                if exc.status == 404:
                    log.info("status.gone", canary=str(key))
                    return
                if exc.status != 409 or attempt == CONFLICT_RETRIES:
                    raise Unavailable(f"writing the status of {key}: {exc}") from exc
                log.debug("status.conflict", canary=str(key), attempt=attempt)
                body = self.rest.get_or_none(CANARY.path(key.namespace, key.name))
                continue
            informer.remember(written)
            # The status just written is the one the next tick must read; parse nothing for it.
            self._statuses[key] = (_resource_version(written), status)
            return

    def _stored(self, body: Body) -> StoredCanary:
        meta = body.get("metadata") or {}
        key = CanaryKey(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        uid, generation = str(meta.get("uid") or ""), int(meta.get("generation") or 0)
        parsed = self._specs.get(key)
        if parsed is None or parsed.uid != uid or parsed.generation != generation:
            parsed = _parse(body, uid, generation)
            self._specs[key] = parsed
        return StoredCanary(
            key,
            parsed.spec,
            self._status(key, body),
            generation,
            parsed.problems,
            chaos.request_of(meta),
            commands.command_of(meta),
        )

    def _status(self, key: CanaryKey, body: Body) -> CanaryStatus:
        version = _resource_version(body)
        cached = self._statuses.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        raw = body.get("status")
        try:
            status = CanaryStatus.model_validate(raw) if isinstance(raw, dict) else CanaryStatus()
        except ValidationError as exc:
            # A status we cannot read (hand-edited, or from an older controller) starts over
            # rather than wedging the Canary; the log keeps what was there.
            log.warning("status.unreadable", canary=str(key), error=str(exc).splitlines()[0])
            status = CanaryStatus()
        self._statuses[key] = (version, status)
        return status


def parse_canary(key: CanaryKey, body: Body) -> StoredCanary:
    """A Canary as read straight from the API (no cache), for a one-off reader like the CLI."""
    meta = body.get("metadata") or {}
    parsed = _parse(body, str(meta.get("uid") or ""), int(meta.get("generation") or 0))
    raw = body.get("status")
    try:
        status = CanaryStatus.model_validate(raw) if isinstance(raw, dict) else CanaryStatus()
    except ValidationError:
        status = CanaryStatus()
    return StoredCanary(
        key,
        parsed.spec,
        status,
        parsed.generation,
        parsed.problems,
        chaos.request_of(meta),
        commands.command_of(meta),
    )


def _parse(body: Body, uid: str, generation: int) -> _Parsed:
    try:
        return _Parsed(uid, generation, Canary.model_validate(_without_status(body)).spec, ())
    except ValidationError as exc:
        return _Parsed(uid, generation, None, tuple(api_problems.lines(exc, Canary)))


def _without_status(body: Body) -> dict[str, Any]:
    return {field: value for field, value in body.items() if field != "status"}


def _resource_version(body: Body) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")
