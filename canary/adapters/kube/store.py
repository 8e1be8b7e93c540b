"""The Store on a Kubernetes API server: reads from the watch-fed cache, writes status alone.

Reads never call the API server: a tick that has nothing to write costs no request. A Canary's
spec is parsed once per generation and its status once per resourceVersion, so the engine gets
the same spec object tick after tick (and reuses what it worked out for it). The status goes
through the status subresource as a whole (PUT, so a field the engine cleared is cleared), with
the resourceVersion the cache holds; a conflict re-reads the object and tries again, since the
controller (the lease holder) is the status's only writer and the newer version differs only in
what someone else wrote (the spec, labels), which a status write leaves alone.

The controller's finalizer (ports.FINALIZER) is the one thing it writes outside the status: a
JSON patch of `metadata.finalizers` alone, guarded by a `test` of what was read, so another
controller's finalizer added meanwhile is never lost (the patch fails, and the next tick reads
again). Taking it off a deleted Canary lets the API server remove the object; the cache then
forgets it at once, so no tick finds it again before the watch says it is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError

from canary.adapters.kube.cache import ClusterCache
from canary.adapters.kube.rest import (
    CANARY,
    CHAT_PROVIDER,
    JSON_PATCH,
    METRIC_TEMPLATE,
    ApiError,
    Body,
    Kind,
    Rest,
)
from canary.api import chaos, commands
from canary.api import problems as api_problems
from canary.api.chat_provider import ChatProvider
from canary.api.commands import COMMAND_ANNOTATION, Command
from canary.api.metric_template import MetricTemplate
from canary.api.resources import Canary
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus, Condition
from canary.errors import InvalidSpec, Unavailable
from canary.ports import FINALIZER, CanaryKey, StoredCanary

M = TypeVar("M", MetricTemplate, ChatProvider)

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
        # resourceVersion -> the status read at it, and why it could not be read ("" if it could).
        self._statuses: dict[CanaryKey, tuple[str, CanaryStatus, str]] = {}
        self._templates: dict[tuple[str, str], tuple[str, MetricTemplate]] = {}
        self._chat_providers: dict[tuple[str, str], tuple[str, ChatProvider]] = {}

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
        return _validated(
            self.cache, METRIC_TEMPLATE, MetricTemplate, self._templates, at=(namespace, name)
        )

    def chat_provider(self, namespace: str, name: str) -> ChatProvider | None:
        return _validated(
            self.cache, CHAT_PROVIDER, ChatProvider, self._chat_providers, at=(namespace, name)
        )

    def ask(self, key: CanaryKey, command: Command) -> str:
        body = self.cache.of(CANARY).get(key.namespace, key.name)
        if body is None:
            return f"no Canary {key}"
        meta = body.get("metadata") or {}
        pending = commands.command_of(meta)
        status, _ = self._status(key, body)
        answered = status.last_command
        if pending is not None and (answered is None or answered.id != pending.id):
            return "another decision is waiting to be carried out"
        annotations = meta.get("annotations")
        # Guarded by the annotation as read: a click and a CLI decision racing each other
        # cannot both be written, so one of them decides.
        text = command.model_dump_json(by_alias=True)
        path = "/metadata/annotations/" + COMMAND_ANNOTATION.replace("/", "~1")
        if not isinstance(annotations, dict):
            operations: list[dict[str, Any]] = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": _resource_version(body),
                },
                {"op": "add", "path": "/metadata/annotations", "value": {COMMAND_ANNOTATION: text}},
            ]
        elif COMMAND_ANNOTATION in annotations:
            operations = [
                {"op": "test", "path": path, "value": annotations[COMMAND_ANNOTATION]},
                {"op": "replace", "path": path, "value": text},
            ]
        else:
            operations = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": _resource_version(body),
                },
                {"op": "add", "path": path, "value": text},
            ]
        try:
            written = self._patch_metadata(key, operations)
        except Unavailable:
            return "another decision arrived at the same moment; look at the rollout again"
        if written is None:
            return f"no Canary {key}"
        self.cache.of(CANARY).remember(written)
        return ""

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
            self._statuses[key] = (_resource_version(written), status, "")
            return

    def write_conditions(self, key: CanaryKey, conditions: tuple[Condition, ...]) -> None:
        # A merge patch replaces the list and leaves the rest of the status as it is, unread.
        patch = {
            "status": {"conditions": [c.model_dump(mode="json", by_alias=True) for c in conditions]}
        }
        try:
            written = self.rest.patch(
                CANARY.path(key.namespace, key.name, "status"),
                patch,
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            if exc.status == 404:
                return
            raise Unavailable(f"writing the conditions of {key}: {exc}") from exc
        self.cache.of(CANARY).remember(written)

    def add_finalizer(self, key: CanaryKey) -> None:
        body = self.cache.of(CANARY).get(key.namespace, key.name)
        if body is None:
            return
        meta = body.get("metadata") or {}
        current = meta.get("finalizers")
        if isinstance(current, list) and FINALIZER in current:
            return
        if isinstance(current, list):
            operations: list[dict[str, Any]] = [
                {"op": "test", "path": "/metadata/finalizers", "value": current},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ]
        else:
            # No list yet: the test makes sure nobody created one since it was read.
            operations = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": _resource_version(body),
                },
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ]
        written = self._patch_metadata(key, operations)
        if written is not None:
            self.cache.of(CANARY).remember(written)
            log.info("finalizer.added", canary=str(key))

    def remove_finalizer(self, key: CanaryKey) -> None:
        informer = self.cache.of(CANARY)
        body = informer.get(key.namespace, key.name)
        if body is None:
            return
        current = (body.get("metadata") or {}).get("finalizers")
        if not isinstance(current, list) or FINALIZER not in current:
            return
        index = current.index(FINALIZER)
        operations = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        written = self._patch_metadata(key, operations)
        log.info("finalizer.removed", canary=str(key))
        if written is None:
            return
        meta = written.get("metadata") or {}
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # The API server removes it now; the watch's DELETED event may come before or
            # after this line, and remembering the response would bring it back for good.
            informer.forget(key.namespace, key.name)
            self._specs.pop(key, None)
            self._statuses.pop(key, None)
        else:
            informer.remember(written)

    def _patch_metadata(self, key: CanaryKey, operations: list[dict[str, Any]]) -> Body | None:
        """The Canary as patched; None when it is gone. Unavailable when someone changed
        its finalizers since the cache read them (the next tick works from theirs)."""
        path = CANARY.path(key.namespace, key.name)
        try:
            return self.rest.patch(path, operations, content_type=JSON_PATCH)
        except ApiError as exc:
            if exc.status == 404:
                return None
            if exc.status in (409, 422):
                self.cache.reread(CANARY, path)
                raise Unavailable(
                    f"Canary {key}: its finalizers changed while writing ({exc.message})",
                    retry_after=0.5,
                ) from exc
            raise Unavailable(f"Canary {key}: writing its finalizers: {exc}") from exc

    def _stored(self, body: Body) -> StoredCanary:
        meta = body.get("metadata") or {}
        key = CanaryKey(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        uid, generation = str(meta.get("uid") or ""), int(meta.get("generation") or 0)
        parsed = self._specs.get(key)
        if parsed is None or parsed.uid != uid or parsed.generation != generation:
            parsed = _parse(body, uid, generation)
            self._specs[key] = parsed
        status, status_error = self._status(key, body)
        return StoredCanary(
            key,
            parsed.spec,
            status,
            generation,
            parsed.problems,
            chaos.request_of(meta),
            commands.command_of(meta),
            status_error=status_error,
            uid=uid,
            deleting_since=_moment(meta.get("deletionTimestamp")),
            finalizers=_finalizers(meta),
        )

    def _status(self, key: CanaryKey, body: Body) -> tuple[CanaryStatus, str]:
        version = _resource_version(body)
        cached = self._statuses.get(key)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        status, error = read_status(body)
        if error:
            log.warning("status.unreadable", canary=str(key), error=error)
        self._statuses[key] = (version, status, error)
        return status, error


def parse_canary(key: CanaryKey, body: Body) -> StoredCanary:
    """A Canary as read straight from the API (no cache), for a one-off reader like the CLI."""
    meta = body.get("metadata") or {}
    parsed = _parse(body, str(meta.get("uid") or ""), int(meta.get("generation") or 0))
    status, status_error = read_status(body)
    return StoredCanary(
        key,
        parsed.spec,
        status,
        parsed.generation,
        parsed.problems,
        chaos.request_of(meta),
        commands.command_of(meta),
        status_error=status_error,
        uid=parsed.uid,
        deleting_since=_moment(meta.get("deletionTimestamp")),
        finalizers=_finalizers(meta),
    )


def read_status(body: Body) -> tuple[CanaryStatus, str]:
    """The status, or an empty one and why it could not be read (hand-edited, or written by a
    controller of another version): never silently an empty one, which would start over."""
    raw = body.get("status")
    if raw is None:
        return CanaryStatus(), ""
    if not isinstance(raw, dict):
        return CanaryStatus(), f"status is {type(raw).__name__}, not an object"
    try:
        return CanaryStatus.model_validate(raw), ""
    except ValidationError as exc:
        return CanaryStatus(), "; ".join(
            f"status.{line}" for line in api_problems.lines(exc, CanaryStatus)
        )


def _parse(body: Body, uid: str, generation: int) -> _Parsed:
    try:
        return _Parsed(uid, generation, Canary.model_validate(_without_status(body)).spec, ())
    except ValidationError as exc:
        return _Parsed(uid, generation, None, tuple(api_problems.lines(exc, Canary)))


def _validated(
    cache: ClusterCache,
    kind: Kind,
    model: type[M],
    parsed: dict[tuple[str, str], tuple[str, M]],
    *,
    at: tuple[str, str],
) -> M | None:
    """The cached object as `model`, parsed once per resourceVersion; InvalidSpec naming every
    problem when it does not validate."""
    namespace, name = at
    body = cache.of(kind).get(namespace, name)
    if body is None:
        return None
    version = _resource_version(body)
    cached = parsed.get(at)
    if cached is None or cached[0] != version:
        try:
            found = model.model_validate(_without_status(body))
        except ValidationError as exc:
            raise InvalidSpec(
                *(
                    f"{kind.kind} {namespace}/{name}: {line}"
                    for line in api_problems.lines(exc, model)
                )
            ) from exc
        cached = (version, found)
        parsed[at] = cached
    return cached[1]


def _without_status(body: Body) -> dict[str, Any]:
    return {field: value for field, value in body.items() if field != "status"}


def _resource_version(body: Body) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def _moment(text: object) -> datetime | None:
    """A metadata timestamp (RFC 3339, `Z`); None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _finalizers(meta: Body) -> tuple[str, ...]:
    found = meta.get("finalizers")
    return tuple(str(name) for name in found) if isinstance(found, list) else ()
